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

#: Stages whose progress steps are denoising (or training) steps.
STEP_STAGES = ("train", "identity", "shading", "harmonize")


class StageMeter:
    """Steps, step times and peak GPU memory per stage, from the engine's progress reports.

    Each stage opens with a step-0 report, so the peak memory is reset where the stage starts; the
    rate is taken between a stage's first and last step reports, so setup and decoding stay out of it.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stages: dict[str, dict] = {}
        self._current: str | None = None

    def __call__(self, progress) -> None:
        if progress.stage != self._current:
            self._switch(progress.stage)
        # Every report with a step ≥ 1 is one denoising (or training) step, except the closing "Done".
        if progress.stage in STEP_STAGES and progress.step >= 1 and progress.message != "Done":
            entry = self.stages[progress.stage]
            now = self._sync()
            entry["first"] = entry["first"] if entry["first"] is not None else now
            entry["last"] = now
            entry["steps"] += 1

    def rate(self, stage: str) -> float | None:
        """Steps per second between the first and the last step of ``stage``."""
        entry = self.stages.get(stage)
        if not entry or entry["steps"] < 2 or entry["last"] <= entry["first"]:
            return None
        return (entry["steps"] - 1) / (entry["last"] - entry["first"])

    def close(self) -> None:
        self._switch(None)

    def _switch(self, stage: str | None) -> None:
        if self._current is not None:
            self.stages[self._current]["peak_gb"] = self._peak()
        self._current = stage
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        if stage is not None:
            self.stages.setdefault(stage, {"steps": 0, "first": None, "last": None, "peak_gb": 0.0})

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
    rate = meter.rate("train")
    print(f"train-identity: {seconds:.1f} s for {args.train_steps} steps (with face alignment and latent caching); "
          f"{rate:.2f} it/s in the loop; loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}{mem}"
          if rate else f"train-identity: {seconds:.1f} s for {args.train_steps} steps{mem}")

    request = RunRequest(identity=tuple(identity), reference=reference, engine="diffusion", crop_size=crop,
                         steps=args.steps, seed=0,
                         diffusion=DiffusionParams(lora=str(result.lora_path), preview_every=5))
    overall = meter.stages["train"]["peak_gb"] if "train" in meter.stages else 0.0
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
        for stage, seconds in out.timings.items():
            entry = meter.stages.get(stage, {})
            rate = meter.rate(stage)
            steps = f", {entry['steps']} denoising steps" if entry.get("steps") else ""
            its = f", {rate:.2f} it/s" if rate else ""
            mem = f", peak GPU memory {entry['peak_gb']:.2f} GiB" if device.type == "cuda" and entry else ""
            print(f"  {stage:<10} {seconds:7.2f} s{steps}{its}{mem}")
        overall = max([overall, *(entry.get("peak_gb", 0.0) for entry in meter.stages.values())])
    if device.type == "cuda":
        # The meter resets the peak at each stage, so the overall peak is the largest stage peak.
        print(f"peak GPU memory overall (training and runs): {overall:.2f} GiB "
              f"of {torch.cuda.get_device_properties(device).total_memory / 2**30:.1f} GiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
