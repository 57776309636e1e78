"""``torch.compile`` for the fast path, with the compiled artefacts kept on disk between starts.

Compiling the UNet and ControlNets takes minutes; what it produces (Inductor's generated kernels, the
AOTAutograd graphs, autotuning results) is saved with ``torch.compiler.save_cache_artifacts`` in a
folder keyed by the model architecture, dtype, GPU and library versions, one file per step shape
(:func:`save_artefacts`). The next start loads them all before compiling, so Inductor finds every
kernel already built and only Dynamo's tracing is left.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import torch

from ..atomic_write import write_bytes_atomically

MANIFEST = "manifest.json"


def compile_cache_dir() -> Path:
    """``compiled/`` in the user cache folder."""
    from ..paths import cache_dir

    return cache_dir() / "compiled"


def artefact_key(unet: Any, nets: dict[str, Any], device: torch.device) -> dict[str, str]:
    """What compiled code depends on besides the step's shapes: architectures, dtype, GPU, versions."""
    import diffusers
    import triton

    # The architectures, without the "_name_or_path"-style bookkeeping entries.
    configs = json.dumps([{k: v for k, v in m.config.items() if not k.startswith("_")}
                          for m in (unet, *nets.values())], sort_keys=True, default=str)
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


def compile_modules(unet: Any, nets: dict[str, Any], device: torch.device,
                    cache_dir: Path | None = None) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Compiled callables for the UNet and each ControlNet (compilation happens on their first call).

    Loads every artefact file saved for the same key first. Returns the callables and a report:
    the key, its folder and how many artefact files were loaded.
    """
    import os

    import torch._inductor.config as inductor

    key = artefact_key(unet, nets, device)
    folder = key_folder(cache_dir or compile_cache_dir(), key)
    folder.mkdir(parents=True, exist_ok=True)
    # Inductor's own on-disk caches go beside the artefacts (its default is a temporary folder).
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder.parent / "inductor"))
    started = time.perf_counter()
    loaded = 0
    for file in sorted(folder.glob("*.bin")):
        torch.compiler.load_cache_artifacts(file.read_bytes())
        loaded += 1
    # 1×1 convolutions as matrix products: in channels-last they are one (tensor-core) GEMM.
    inductor.conv_1x1_as_mm = True
    compiled_unet = torch.compile(unet, fullgraph=True, dynamic=False)
    compiled_nets = {role: torch.compile(net, fullgraph=True, dynamic=False) for role, net in nets.items()}
    report = {"key": key, "folder": str(folder), "artefact_files_loaded": loaded,
              "load_seconds": time.perf_counter() - started}
    return compiled_unet, compiled_nets, report


def save_artefacts(folder: Path, signature: str, seconds: float) -> Path | None:
    """Save what this process compiled so far, as the artefacts of the step ``signature``.

    Records in the folder's manifest how long the first compile and capture of that step took.
    Returns the file written, or ``None`` when there was nothing to save.
    """
    saved = torch.compiler.save_cache_artifacts()
    if saved is None:
        return None
    data, _ = saved
    name = hashlib.sha256(signature.encode()).hexdigest()[:16]
    path = folder / f"{name}.bin"
    write_bytes_atomically(path, data)
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"steps": {}}
    manifest["steps"][name] = {"signature": signature, "first_compile_seconds": round(seconds, 1),
                               "bytes": len(data), "saved": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_bytes_atomically(manifest_path, json.dumps(manifest, indent=2).encode())
    return path
