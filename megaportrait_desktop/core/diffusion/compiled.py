"""``torch.compile`` for the fast path, with the compiled artefacts kept on disk between starts.

Compiling the UNet, the ControlNets and the VAE takes minutes; what it produces (Inductor's generated kernels, the
AOTAutograd graphs, autotuning results) is saved with ``torch.compiler.save_cache_artifacts`` in a
folder keyed by the model architecture, dtype, GPU and library versions, one file per step shape
(:func:`save_artefacts`). The next start loads them all before compiling, so Inductor finds every
kernel already built and only Dynamo's tracing is left.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic_write import write_bytes_atomically

MANIFEST = "manifest.json"
#: Why Inductor or AOTAutograd did not cache a graph, as they logged it (for the compile report).
_BYPASSES: list[str] = []


class _BypassLog(logging.Handler):
    """Keeps the caches' bypass messages (logged at INFO, which torch does not show); passes warnings on."""

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "ypass" in message or "unable to" in message:
            _BYPASSES.append(message[:300])
        if record.levelno >= logging.WARNING:
            logging.getLogger("torch").handle(record)


def watch_cache_bypasses() -> None:
    """Collect the caches' bypass messages from now on (once per process)."""
    for name in ("torch._inductor.codecache", "torch._functorch._aot_autograd.autograd_cache"):
        logger = logging.getLogger(name)
        if any(isinstance(h, _BypassLog) for h in logger.handlers):
            continue
        logger.addHandler(_BypassLog(logging.INFO))
        logger.setLevel(logging.INFO)
        logger.propagate = False  # INFO records would otherwise reach torch's console handler


def cache_report() -> dict[str, Any]:
    """This process's compile-cache hits, misses and bypasses (with reasons) and Dynamo's time per phase."""
    from torch._dynamo.utils import compile_times, counters

    stats = {f"{group}.{k}": v for group in ("inductor", "aot_autograd") for k, v in counters[group].items()
             if "cache" in k}
    headers, values = compile_times(repr="csv", aggregate=True)
    phases = {h: round(float(v), 1) for h, v in zip(headers, values, strict=False) if float(v) >= 1.0}
    return {"counters": stats, "bypasses": sorted(set(_BYPASSES))[:10], "seconds_by_phase": phases}


def compile_cache_dir() -> Path:
    """``compiled/`` in the user cache folder."""
    from ..paths import cache_dir

    return cache_dir() / "compiled"


def artefact_key(models: list[Any], device: torch.device) -> dict[str, str]:
    """What compiled code depends on besides the step's shapes: architectures, dtype, GPU, versions."""
    import diffusers
    import triton

    from .models import architecture

    configs = "\n".join(architecture(m) for m in models)
    unet = models[0]
    gpu = torch.cuda.get_device_properties(device) if device.type == "cuda" else None
    return {
        "models": hashlib.sha256(configs.encode()).hexdigest()[:16],
        "dtype": str(unet.dtype).removeprefix("torch."),
        "gpu": f"{gpu.name} sm_{gpu.major}{gpu.minor}" if gpu else device.type,
        "torch": torch.__version__, "triton": triton.__version__, "diffusers": diffusers.__version__,
    }


def key_folder(root: Path, key: dict[str, str]) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return root / digest


def compile_modules(unet: Any, nets: dict[str, Any], vae: Any, device: torch.device,
                    cache_dir: Path | None = None) -> tuple[Any, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Compiled callables for the UNet, each ControlNet and the VAE's encoder and decoder (each compiles
    on its first call), over the same modules and weights.

    Loads every artefact file saved for the same key first. Returns the UNet's, the ControlNets' (by
    role), the VAE parts' (``encoder``, ``decoder``) and a report: the key, its folder and how many
    artefact files were loaded.
    """
    import os

    import torch._inductor.config as inductor

    watch_cache_bypasses()
    key = artefact_key([unet, *nets.values(), vae], device)
    folder = key_folder(cache_dir or compile_cache_dir(), key)
    started = time.perf_counter()
    loaded, cache_error = 0, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Inductor's own on-disk caches go beside the artefacts (its default is a temporary folder).
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder.parent / "inductor"))
        for file in sorted(folder.glob("*.bin")):
            torch.compiler.load_cache_artifacts(file.read_bytes())  # a damaged file: torch warns, loads nothing
            loaded += 1
    except OSError as exc:  # an unusable cache folder: compile from scratch, as on a first start
        cache_error = str(exc)
        logging.getLogger("megaportrait.diffusion").warning(
            "Cannot use the compiled-model cache in %s (%s); compiling from scratch.", folder, exc)
    # 1×1 convolutions as matrix products: in channels-last they are one (tensor-core) GEMM.
    inductor.conv_1x1_as_mm = True
    compiled_unet = torch.compile(unet, fullgraph=True, dynamic=False)
    compiled_nets = {role: torch.compile(net, fullgraph=True, dynamic=False) for role, net in nets.items()}
    vae_parts = {name: torch.compile(getattr(vae, name), fullgraph=True, dynamic=False)
                 for name in ("encoder", "decoder")}
    report = {"key": key, "folder": str(folder), "artefact_files_loaded": loaded,
              "load_seconds": time.perf_counter() - started, "cache_error": cache_error}
    return compiled_unet, compiled_nets, vae_parts, report


def saved_steps(folder: Path) -> set[str]:
    """The step signatures whose compiled artefacts are already in ``folder``."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return set()
    return {step["signature"] for step in json.loads(manifest.read_text())["steps"].values()}


def save_artefacts(folder: Path, captures: list[dict[str, Any]], previous: Path | None = None) -> Path | None:
    """Save what this process compiled so far, as the artefacts of the step signatures in ``captures``
    (each ``{"step": signature, "seconds": first compile and capture}``), recorded in the manifest.

    Torch hands out everything compiled since the process started, so the file replaces ``previous``,
    this process's earlier file. Returns the file written, or ``None`` when there was nothing to save.
    """
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    data, _ = saved
    name = hashlib.sha256("\n".join(sorted(c["step"] for c in captures)).encode()).hexdigest()[:16]
    path = folder / f"{name}.bin"
    write_bytes_atomically(path, data)
    if previous is not None and previous != path:
        previous.unlink(missing_ok=True)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"steps": {}}
    for c in captures:
        manifest["steps"][hashlib.sha256(c["step"].encode()).hexdigest()[:16]] = {
            "signature": c["step"], "first_compile_seconds": round(c["seconds"], 1), "file": path.name,
            "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_bytes_atomically(manifest_path, json.dumps(manifest, indent=2).encode())
    return path
