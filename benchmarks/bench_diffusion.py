"""Benchmark: the whole diffusion pipeline with Stable Diffusion 1.5-shaped random-weight models.

Builds every model from configs in code (UNet with cross-attention 768, the SD VAE, a CLIP-L-sized
text encoder, four ControlNets; nothing is read from disk or downloaded), trains an identity LoRA
on the demo identity photos, then runs the pair, Shading and Harmonization on the demo reference.
Prints seconds per stage, it/s and peak GPU memory; asserts nothing. Random weights make the
images meaningless: only the figures count.

    python benchmarks/bench_diffusion.py                       # CUDA, fp16, 512 crop, 300 training steps
    python benchmarks/bench_diffusion.py --tiny --device cpu   # smoke test of the script (seconds)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from megaportrait_desktop.core.diffusion import synthetic  # noqa: E402
from megaportrait_desktop.core.diffusion.devices import choose_device  # noqa: E402
from megaportrait_desktop.core.diffusion.engine import DiffusionEngine  # noqa: E402
from megaportrait_desktop.core.diffusion.runtime import place  # noqa: E402
from megaportrait_desktop.core.diffusion.training import TrainingParams  # noqa: E402
from megaportrait_desktop.core.paths import demo_dir  # noqa: E402
from megaportrait_desktop.core.pipeline import run  # noqa: E402
from megaportrait_desktop.core.progress import Reporter  # noqa: E402
from megaportrait_desktop.core.request import DiffusionParams, RunRequest  # noqa: E402


class StageMeter:
    """Wall time, denoising/training steps and peak GPU memory per stage, from progress reports."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stages: dict[str, dict] = {}
        self._current: str | None = None
        self._started = 0.0

    def __call__(self, progress) -> None:
        if progress.stage != self._current:
            self._switch(progress.stage)
        # Every report with a step ≥ 1 is one denoising (or training) step, except the closing "Done".
        if progress.step >= 1 and progress.message != "Done":
            self.stages[progress.stage]["steps"] += 1

    def _switch(self, stage: str | None) -> None:
        now = self._sync()
        if self._current is not None:
            entry = self.stages[self._current]
            entry["seconds"] += now - self._started
            entry["peak_gb"] = max(entry["peak_gb"], self._peak())
        self._current, self._started = stage, now
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        if stage is not None:
            self.stages.setdefault(stage, {"seconds": 0.0, "steps": 0, "peak_gb": 0.0})

    def close(self) -> None:
        self._switch(None)

    def _sync(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _peak(self) -> float:
        return torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and a 64 px crop (smoke test)")
    parser.add_argument("--device", default="cuda", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp16", "bf16", "fp32"])
    parser.add_argument("--offload", default="off", choices=["auto", "on", "off"])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--steps", type=int, default=30, help="denoising steps per pass (before img2img strength)")
    parser.add_argument("--crop", type=int, help="working size (default 512; 64 with --tiny)")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2, help="pipeline runs (the first one warms up)")
    args = parser.parse_args(argv)
    crop = args.crop or (64 if args.tiny else 512)
    shape_name = "tiny" if args.tiny else "sd15"

    choice = choose_device(args.device, args.precision, args.offload)
    device = choice.device
    print(f"device: {choice.describe()}; torch {torch.__version__}; python {platform.python_version()}; "
          f"models: {shape_name} (random weights); crop {crop}px")
    work = Path(tempfile.mkdtemp(prefix="mp-bench-"))

    t = time.perf_counter()
    components = synthetic.build(shape_name, seed=0, tokenizer_dir=work / "tokenizer",
                                 device="cpu" if choice.offload else device)
    base = {"unet": components.unet, "vae": components.vae, "text_encoder": components.text_encoder,
            "tokenizer": components.tokenizer, "scheduler": components.scheduler}
    models = place(base, components.controlnets, choice)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    params = {name: sum(p.numel() for p in m.parameters()) / 1e6
              for name, m in (("unet", components.unet), ("vae", components.vae), ("text", components.text_encoder),
                              *components.controlnets.items())}
    print(f"build: {time.perf_counter() - t:.1f} s; parameters (M): "
          + ", ".join(f"{k} {v:.1f}" for k, v in params.items()))
    engine = DiffusionEngine(loaded=models)

    demo = demo_dir()
    identity = sorted(str(p) for p in (demo / "identity").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    reference = next(str(p) for p in (demo / "reference").iterdir() if p.suffix.lower() in (".jpg", ".png"))

    meter = StageMeter(device)
    train = TrainingParams(steps=args.train_steps, resolution=crop, rank=args.rank, checkpoint_every=10**9)
    t = time.perf_counter()
    result = engine.train_identity(identity, work / "lora", train, Reporter(meter))
    meter.close()
    seconds = time.perf_counter() - t
    mem = f"; peak GPU memory {meter.stages['train']['peak_gb']:.2f} GiB" if device.type == "cuda" else ""
    print(f"train-identity: {seconds:.1f} s for {args.train_steps} steps = {args.train_steps / seconds:.2f} it/s "
          f"(includes face alignment and latent caching); loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}"
          f"{mem}")

    request = RunRequest(identity=tuple(identity), reference=reference, engine="diffusion", crop_size=crop,
                         steps=args.steps, seed=0,
                         diffusion=DiffusionParams(lora=str(result.lora_path), preview_every=5))
    for i in range(args.runs):
        meter = StageMeter(device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t = time.perf_counter()
        out = run(request, on_progress=meter, diffusion=engine)
        meter.close()
        total = time.perf_counter() - t
        label = "warm-up run" if i == 0 and args.runs > 1 else "run"
        print(f"{label} {i + 1}: {total:.2f} s total")
        for stage, entry in meter.stages.items():
            rate = f", {entry['steps'] / entry['seconds']:.2f} it/s ({entry['steps']} steps)" \
                if stage in ("identity", "shading", "harmonize") and entry["seconds"] > 0 else ""
            mem = f", peak GPU memory {entry['peak_gb']:.2f} GiB" if device.type == "cuda" else ""
            print(f"  {stage:<10} {entry['seconds']:7.2f} s{rate}{mem}")
        print("  engine timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in out.timings.items()))
    if device.type == "cuda":
        print(f"peak GPU memory overall: {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB "
              f"of {torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
