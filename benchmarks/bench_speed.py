"""Benchmark: stock diffusers calls against the fast path, in one process, on the same SD 1.5-shaped models.

Builds random-weight models of Stable Diffusion 1.5's sizes (speed does not depend on weight values),
then measures, for the stock path (the stages' diffusers pipeline calls) and the fast path (captured
steps, folded LoRA; see ``core/diffusion/fast.py``), in the sections ``--sections`` names:

- ``stock``, ``graphs``, ``compiled``, ``low-memory``: the four MegaPortrait stages chained (pair A and
  B, Shading, Harmonization; 30 scheduled steps each, UniPC, guidance 7, 512 crop): seconds, it/s,
  stock/fast ratio, peak GPU memory, and the largest pixel difference between the two paths' images,
  chained and per stage on equal inputs; ``compiled`` (the app's default) adds its first-start
  compile time and compile-cache report;
- ``run``: a whole ``run()`` (face detection, control image, paste-back and scoring included);
- ``second-start``: a second process that starts the compiled path from the artefacts on disk;
- ``training``: identity training on a 10-photo identity (the same steps, batch and samples for both).

Prints figures and a table; asserts nothing. ``--json FILE`` keeps every figure.

    python benchmarks/bench_speed.py                                          # CUDA, every section
    python benchmarks/bench_speed.py --sections compiled,second-start         # compile and cache only
    python benchmarks/bench_speed.py --tiny --device cpu --sections stock,graphs   # smoke test (seconds)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from megaportrait_desktop.core.diffusion import synthetic  # noqa: E402
from megaportrait_desktop.core.diffusion.devices import choose_device  # noqa: E402
from megaportrait_desktop.core.diffusion.fast import FastOptions, FastRuntime  # noqa: E402
from megaportrait_desktop.core.diffusion.runtime import LoadedModels, place  # noqa: E402

STEPS = 30
GUIDANCE = 7.0


# ------------------------------------------------------------------------------------------ helpers


class Clock:
    """Seconds and peak GPU memory of a block (the GPU's work included)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __enter__(self) -> Clock:
        self._sync()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self._sync()
        self.seconds = time.perf_counter() - self.start
        self.peak_gib = torch.cuda.max_memory_allocated(self.device) / 2**30 if self.device.type == "cuda" else 0.0

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def levels(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Largest and mean difference of two float [0, 1] images, in 8-bit levels."""
    d = np.abs(np.rint(np.clip(a, 0, 1) * 255) - np.rint(np.clip(b, 0, 1) * 255))
    return float(d.max()), float(d.mean())


def release(models: LoadedModels) -> None:
    """Drop the fast path over ``models`` (its graphs and their memory), leaving the stock path."""
    if models.fast is not None:
        models.fast.release_lora()
    models.fast = None
    gc.collect()
    if models.choice.device.type == "cuda":
        torch.cuda.empty_cache()


def identity_photos(folder: Path, count: int = 10) -> list[Path]:
    """``count`` photos of one face from the demo identity: crops, scales, small rotations, exposure."""
    import cv2

    from megaportrait_desktop.core.paths import demo_dir

    source = cv2.imread(str(demo_dir() / "identity" / "grace_hopper.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    h, w = source.shape[:2]
    paths = []
    rng = np.random.default_rng(0)
    for i in range(count):
        angle, scale = rng.uniform(-6, 6), rng.uniform(0.9, 1.15)
        m = cv2.getRotationMatrix2D((w / 2 + rng.uniform(-20, 20), h / 2 + rng.uniform(-20, 20)), angle, scale)
        image = cv2.warpAffine(source, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        image = np.clip(image.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12), 0, 255)
        if i % 2:
            image = image[:, ::-1]
        paths.append(folder / f"photo_{i:02d}.jpg")
        cv2.imwrite(str(paths[-1]), image.astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 92])
    return paths


def build(shape: str, device: torch.device, choice, work: Path) -> LoadedModels:
    components = synthetic.build(shape, seed=0, tokenizer_dir=work / "tokenizer", device=device)
    base = {"unet": components.unet, "vae": components.vae, "text_encoder": components.text_encoder,
            "tokenizer": components.tokenizer, "scheduler": components.scheduler}
    return place(base, components.controlnets, choice)


def fast_runtime(models: LoadedModels, options: FastOptions, cache: Path | None = None) -> FastRuntime:
    return FastRuntime(models.components, models.controlnets, models.choice.device, options, cache)


# ------------------------------------------------------------------------------------------- stages


class Stages:
    """The MegaPortrait stages on the demo reference crop, with the issue's settings."""

    def __init__(self, crop_size: int, steps: int) -> None:
        from megaportrait_desktop.core.align import crop_face
        from megaportrait_desktop.core.diffusion.control import face_geometry
        from megaportrait_desktop.core.diffusion.harmonize import blend_weight
        from megaportrait_desktop.core.diffusion.pair import ImageSettings
        from megaportrait_desktop.core.face import detect_faces
        from megaportrait_desktop.core.imaging import load_image, to_float, to_uint8
        from megaportrait_desktop.core.masks import face_mask
        from megaportrait_desktop.core.paths import demo_dir
        from megaportrait_desktop.core.request import DiffusionParams, HarmonizeParams, ShadingParams

        reference = next((demo_dir() / "reference").iterdir())
        picture = load_image(reference)
        face = detect_faces(picture.rgb8())[0]
        crop = crop_face(to_float(picture.pixels), face.landmarks, crop_size)
        self.crop = np.clip(crop.image, 0, 1).astype(np.float32)
        self.control = face_geometry("mediapipe_face", to_uint8(self.crop))
        self.mask = face_mask(crop.to_crop(face.landmarks), (crop_size, crop_size), grow_px=-4, feather_px=6)
        self.steps = steps
        self.params = DiffusionParams(guidance_scale=GUIDANCE, preview_every=0, shading_denoise=0.6,
                                      harmonize_denoise=0.5, harmonize_tile_weight=0.5)
        self.a = ImageSettings(lora_scale=0.3, denoise=0.35, control=1.0)
        self.b = ImageSettings(lora_scale=1.0, denoise=0.70, control=1.0)
        self.shading = ShadingParams()
        self.weight = blend_weight(self.mask, HarmonizeParams(), self.params)
        # Denoising steps each stage runs (diffusers runs int(steps · strength)).
        self.stage_steps = {"pair": int(steps * 0.35) + int(steps * 0.70), "shading": int(steps * 0.6),
                            "harmonize": int(steps * 0.5)}

    def pair(self, models):
        from megaportrait_desktop.core.diffusion.pair import generate_pair
        from megaportrait_desktop.core.progress import Reporter

        return generate_pair(models, self.crop, self.control, self.a, self.b, self.params, self.steps, 0, Reporter())

    def shade(self, models, a, b):
        from megaportrait_desktop.core.diffusion.shading import shade
        from megaportrait_desktop.core.progress import Reporter

        return shade(models, a, b, self.shading, self.params, self.steps, 0, Reporter())[2]

    def pasted(self, shaded):
        return self.crop + np.clip(self.mask, 0, 1)[:, :, None] * (shaded - self.crop)

    def harmonize(self, models, pasted):
        from megaportrait_desktop.core.diffusion.harmonize import harmonize
        from megaportrait_desktop.core.progress import Reporter

        return harmonize(models, pasted, self.weight, self.params, self.steps, 0, Reporter())

    def chain(self, models, device) -> tuple[dict, dict]:
        """Images and (seconds, peak GiB) of each stage, chained as the pipeline chains them."""
        clocks, images = {}, {}
        with Clock(device) as c:
            images["A"], images["B"] = self.pair(models)
        clocks["pair"] = c
        with Clock(device) as c:
            images["shaded"] = self.shade(models, images["A"], images["B"])
        clocks["shading"] = c
        images["pasted"] = self.pasted(images["shaded"])
        with Clock(device) as c:
            images["harmonized"] = self.harmonize(models, images["pasted"])
        clocks["harmonize"] = c
        return images, {k: (v.seconds, v.peak_gib) for k, v in clocks.items()}


def time_chains(stages: Stages, models, device, runs: int) -> dict:
    """A first chain (captures, compiles), then ``runs`` timed chains: medians per stage and in all."""
    with Clock(device) as first:
        images, _ = stages.chain(models, device)
    per_run = []
    with Clock(device) as whole:
        for _ in range(runs):
            _, timings = stages.chain(models, device)
            per_run.append(timings)
    stage_seconds = {k: statistics.median(t[k][0] for t in per_run) for k in per_run[0]}
    stage_peaks = {k: max(t[k][1] for t in per_run) for k in per_run[0]}
    totals = [sum(v[0] for v in t.values()) for t in per_run]
    return {"images": images, "first_seconds": first.seconds, "stage_seconds": stage_seconds,
            "stage_peak_gib": stage_peaks, "total_seconds": statistics.median(totals),
            "peak_gib": max(max(stage_peaks.values()), whole.peak_gib)}


def isolated(stages: Stages, models, stock_images: dict) -> dict:
    """Each stage of this path on the stock path's inputs (so no earlier difference is carried in)."""
    return {"shaded": stages.shade(models, stock_images["A"], stock_images["B"]),
            "harmonized": stages.harmonize(models, stock_images["pasted"])}


# ----------------------------------------------------------------------------------------- sections


def bench_training(models, photos, steps, rank, resolution, work, device, both: bool = True) -> dict:
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.diffusion.training import TrainingParams
    from megaportrait_desktop.core.progress import Reporter

    params = TrainingParams(steps=steps, rank=rank, resolution=resolution, checkpoint_every=10**9)
    out: dict = {"steps": steps, "photos": len(photos)}
    # The fast side is the app's default runtime (compiled, so the UNet is channels-last while it trains).
    paths = (("stock", None), ("fast", FastOptions(compile=True))) if both else (("stock", None),)
    for name, runtime in paths:
        if runtime is None:  # stock trains the modules as loaded (an earlier fast section made them NHWC)
            for key in ("unet", "vae"):
                models.components[key].to(memory_format=torch.contiguous_format)
        else:
            runtime = fast_runtime(models, runtime, work / "compiled")
        models.fast = runtime
        marks = []

        def meter(p, marks=marks):
            if p.stage == "train" and p.step >= 1:
                marks.append(time.perf_counter())

        with Clock(device) as c:
            result = DiffusionEngine(loaded=models).train_identity(photos, work / f"lora-{name}", params,
                                                                   Reporter(meter))
        loop_rate = (len(marks) - 1) / (marks[-1] - marks[0]) if len(marks) > 1 else float("nan")
        out[name] = {"seconds": c.seconds, "it_s": loop_rate, "peak_gib": c.peak_gib,
                     "first_loss": result.losses[0], "last_loss": result.losses[-1],
                     "mean_last_50": float(np.mean(result.losses[-50:])), "lora": str(result.lora_path)}
        print(f"training {name}: {c.seconds:.1f} s for {steps} steps × batch 1 ({len(photos)} photos, alignment and "
              f"latent caching included); {loop_rate:.2f} it/s in the loop; loss {result.losses[0]:.3f} → "
              f"{result.losses[-1]:.3f} (mean of the last 50: {out[name]['mean_last_50']:.4f}); "
              f"peak {c.peak_gib:.2f} GiB", flush=True)
        release(models)
    if not both:
        return out
    from safetensors.torch import load_file

    a, b = load_file(out["stock"]["lora"]), load_file(out["fast"]["lora"])
    out["lora_relative_difference"] = sum(float((a[k] - b[k]).float().norm()) for k in a) / sum(
        float(a[k].float().norm()) for k in a)
    print(f"training: LoRA weights fast vs stock, relative difference {out['lora_relative_difference']:.4f}")
    return out


def report_path(name: str, result: dict, stages: Stages, stock: dict | None = None) -> None:
    print(f"{name}: first chain {result['first_seconds']:.2f} s; warm chain {result['total_seconds']:.3f} s; "
          f"peak {result['peak_gib']:.2f} GiB", flush=True)
    for stage, seconds in result["stage_seconds"].items():
        steps = stages.stage_steps[stage]
        ratio = f", {stock['stage_seconds'][stage] / seconds:.2f}× stock" if stock else ""
        print(f"  {stage:<10} {seconds:7.3f} s  {steps} steps  {steps / seconds:6.1f} it/s"
              f"  peak {result['stage_peak_gib'][stage]:.2f} GiB{ratio}")


def compare(name: str, stock: dict, other: dict, isolated_images: dict | None) -> dict:
    out = {}
    for key in ("A", "B", "shaded", "harmonized"):
        out[key] = levels(stock["images"][key], other["images"][key])
    if isolated_images:
        for key, image in isolated_images.items():
            out[f"{key} (same inputs)"] = levels(stock["images"][key], image)
    print(f"{name} vs stock, 8-bit levels (max / mean): "
          + "; ".join(f"{k} {v[0]:.0f} / {v[1]:.2f}" for k, v in out.items()), flush=True)
    return out


def warm_start(args, cache: Path) -> dict:
    """A second process: the same models, the compiled fast path from the artefacts on disk."""
    cmd = [sys.executable, __file__, "--warm-start", str(cache), "--device", args.device, "--steps", str(args.steps)]
    if args.tiny:
        cmd.append("--tiny")
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.warm_timeout)
    wall = time.perf_counter() - t
    line = next((x for x in done.stdout.splitlines() if x.startswith("WARM ")), None)
    if line is None:
        print(f"second start failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        return {"failed": True}
    result = json.loads(line[5:])
    result["process_seconds"] = wall
    return result


def run_warm_start(args) -> int:
    device = torch.device(args.device)
    choice = choose_device(args.device, "auto", "off", fast_path="off")
    work = Path(tempfile.mkdtemp(prefix="mp-warm-"))
    t = time.perf_counter()
    models = build("tiny" if args.tiny else "sd15", device, choice, work)
    built = time.perf_counter() - t
    stages = Stages(64 if args.tiny else 512, args.steps)
    t = time.perf_counter()
    models.fast = fast_runtime(models, FastOptions(compile=True), Path(args.warm_start))
    with Clock(device) as first:
        stages.chain(models, device)
    with Clock(device) as warm:
        stages.chain(models, device)
    from megaportrait_desktop.core.diffusion.compiled import cache_report

    print("WARM " + json.dumps({"build_seconds": built, "prepare_seconds": first.start - t,
                                "first_chain_seconds": first.seconds, "warm_chain_seconds": warm.seconds,
                                "artefact_files_loaded": models.fast.compile_report.get("artefact_files_loaded"),
                                "captures": models.fast.captures, "cache": cache_report()}))
    return 0


# --------------------------------------------------------------------------------------------- main

SECTIONS = ("training", "stock", "graphs", "compiled", "run", "low-memory", "second-start")


def count_syncs(fn) -> tuple[object, int]:
    """``fn()`` and how many times it made the host wait for the GPU (CUDA's sync debug mode)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            out = fn()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return out, sum("synchronizing" in str(w.message) for w in caught)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and a 64 px crop (smoke test)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--steps", type=int, default=STEPS, help="scheduled steps per stage (before strength)")
    parser.add_argument("--runs", type=int, default=3, help="timed chains per path (after a first one)")
    parser.add_argument("--train-steps", type=int, default=400, help="identity training steps")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--sections", default=",".join(s for s in SECTIONS),
                        help=f"what to measure, in this order: {', '.join(SECTIONS)} (the fast sections "
                             "compare with stock, which is always measured when any of them runs)")
    parser.add_argument("--json", help="write every figure to this file (after each section)")
    parser.add_argument("--warm-start", metavar="CACHE", help=argparse.SUPPRESS)
    parser.add_argument("--warm-timeout", type=int, default=600, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warm_start:
        return run_warm_start(args)
    sections = [x.strip() for x in args.sections.split(",") if x.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")

    device = torch.device(args.device)
    crop = 64 if args.tiny else 512
    choice = choose_device(args.device, "auto", "off", fast_path="off")
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    print(f"device: {gpu}; {str(choice.dtype).removeprefix('torch.')}; torch {torch.__version__}; "
          f"python {platform.python_version()}; models: {'tiny' if args.tiny else 'sd15'} (random weights); "
          f"crop {crop}px; {args.steps} steps, UniPC, guidance {GUIDANCE}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="mp-speed-"))
    results: dict = {"device": gpu, "torch": torch.__version__, "crop": crop, "steps": args.steps}

    def keep() -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(strip_images(results), indent=2, default=str))

    with Clock(device) as c:
        models = build("tiny" if args.tiny else "sd15", device, choice, work)
    print(f"build: {c.seconds:.1f} s", flush=True)
    stages = Stages(crop, args.steps)

    # A short stock training makes the LoRA that every pipeline run uses (the timed training is last).
    photos = identity_photos(work / "identity")
    lora = bench_training(models, photos, 20, args.rank, crop, work, device, both=False)["stock"]["lora"]
    models.set_lora(lora)

    if set(sections) <= {"training"}:
        results["training"] = bench_training(models, photos, args.train_steps, args.rank, crop, work, device)
        summary(results, stages)
        keep()
        return 0

    # Stock first: the compiled fast path changes the modules' memory layout.
    stock = results["stock"] = time_chains(stages, models, device, args.runs)
    report_path("stock", stock, stages)
    if "run" in sections:
        results["run"] = {"stock": bench_run(models, lora, crop, args, device)}
    keep()

    if "graphs" in sections:
        models.fast = fast_runtime(models, FastOptions())
        graphs = results["graphs"] = time_chains(stages, models, device, args.runs)
        graphs["captures"] = models.fast.captures
        report_path("fast, graphs only", graphs, stages, stock)
        results["graphs_vs_stock"] = compare("fast, graphs only", stock, graphs,
                                             isolated(stages, models, stock["images"]))
        release(models)
        keep()

    cache = work / "compiled"
    if "compiled" in sections:
        t = time.perf_counter()
        models.fast = fast_runtime(models, FastOptions(compile=True), cache)
        prepare = time.perf_counter() - t
        compiled = results["compiled"] = time_chains(stages, models, device, args.runs)
        compiled["prepare_seconds"] = prepare
        compiled["captures"] = models.fast.captures
        report_path("fast, compiled (the default)", compiled, stages, stock)
        per_step = ", ".join(f"{c['seconds']:.1f}" for c in models.fast.captures)
        print(f"fast, compiled: the first chain compiled and captured in {compiled['first_seconds']:.1f} s "
              f"({per_step} s for each step signature's compile and capture)", flush=True)
        from megaportrait_desktop.core.diffusion.compiled import cache_report

        compiled["cache"] = cache_report()
        print(f"fast, compiled: compile caches in the first process: {json.dumps(compiled['cache'])}", flush=True)
        results["compiled_vs_stock"] = compare("fast, compiled", stock, compiled,
                                               isolated(stages, models, stock["images"]))
        if device.type == "cuda":
            _, syncs = count_syncs(lambda: stages.chain(models, device))
            compiled["host_syncs_per_chain"] = syncs
            print(f"fast, compiled: {syncs} host synchronisations in a warm chain (stock loop: a few per step)")
        if "run" in sections:
            results["run"]["fast"] = bench_run(models, lora, crop, args, device, name="fast (compiled)")
            report_run(results["run"])
        keep()

    if "low-memory" in sections:
        release(models)
        nets = dict(models.controlnets)
        models.fast = fast_runtime(models, FastOptions(compile="compiled" in sections, low_memory=True), cache)
        low = results["low_memory"] = time_chains(stages, models, device, args.runs)
        low["compiled"] = "compiled" in sections
        report_path("fast, low memory", low, stages, stock)
        results["low_memory_vs_stock"] = compare("fast, low memory", stock, low, None)
        release(models)
        for net in nets.values():
            net.to(device)
        keep()

    if "second-start" in sections and "compiled" in sections:
        results["second_start"] = warm_start(args, cache)
        print(f"second start (a new process, compiled artefacts from disk): {json.dumps(results['second_start'])}",
              flush=True)
        keep()

    # Identity training last: the fast path's default runtime (compiled) turns the UNet channels-last,
    # as it does in the app, which would change how the stock stages above ran.
    if "training" in sections:
        models.set_lora(None)
        results["training"] = bench_training(models, photos, args.train_steps, args.rank, crop, work, device)
        keep()

    summary(results, stages)
    keep()
    return 0


def strip_images(results: dict) -> dict:
    return {k: ({kk: vv for kk, vv in v.items() if kk not in ("images", "final")} if isinstance(v, dict) else v)
            for k, v in results.items()}


def report_run(run: dict) -> None:
    d = np.abs(run["stock"]["final"].astype(np.int32) - run["fast"]["final"].astype(np.int32))
    run["final_levels"] = (int(d.max()), float(d.mean()))
    run["ratio"] = run["stock"]["seconds"] / run["fast"]["seconds"]
    print(f"run(): final image fast vs stock, max {d.max()} levels, mean {d.mean():.3f}; "
          f"{run['ratio']:.2f}× end to end", flush=True)
    for name in ("stock", "fast"):
        run[name].pop("final")


def bench_run(models, lora, crop, args, device, name: str = "stock") -> dict:
    """``run()`` end to end on the path ``models`` is set to (median of ``args.runs`` after a first run)."""
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.pipeline import run
    from megaportrait_desktop.core.request import DiffusionParams, IdentityParams, RunRequest

    demo = demo_dir()
    request = RunRequest(
        identity=tuple(sorted(str(p) for p in (demo / "identity").iterdir())),
        reference=str(next((demo / "reference").iterdir())), engine="diffusion", crop_size=crop,
        steps=args.steps, seed=0, identity_params=IdentityParams(a_strength=0.0, b_strength=1.0),
        diffusion=DiffusionParams(lora=lora, guidance_scale=GUIDANCE, preview_every=5, a_denoise=0.35,
                                  b_denoise=0.70, a_lora_scale=0.3, b_lora_scale=1.0, shading_denoise=0.6,
                                  harmonize_denoise=0.5, harmonize_tile_weight=0.5))
    engine = DiffusionEngine(loaded=models)
    run(request, diffusion=engine)
    totals, result = [], None
    for _ in range(args.runs):
        with Clock(device) as c:
            result = run(request, diffusion=engine)
        totals.append(c.seconds)
    out = {"seconds": statistics.median(totals), "timings": result.timings, "final": result.final.pixels}
    print(f"run() {name}: {out['seconds']:.2f} s end to end (previews every 5 steps); "
          + ", ".join(f"{k} {v:.3f}" for k, v in result.timings.items()), flush=True)
    return out


def summary(results: dict, stages: Stages) -> None:
    """The table for the README: stock against the default fast path (compiled), and the variants."""
    if "stock" not in results:
        results = {**results, "stock": None}
    stock = results["stock"]
    fast_key = "compiled" if "compiled" in results else "graphs" if "graphs" in results else None
    image_of = {"pair": ("A", "B"), "shading": ("shaded",), "harmonize": ("harmonized",)}
    total_steps = sum(stages.stage_steps.values())
    print("\n| stage | steps | stock s | stock it/s | fast s | fast it/s | stock/fast | peak GiB stock / fast "
          "| max diff, 8-bit levels (same inputs) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    if fast_key and stock:
        fast, diffs = results[fast_key], results[fast_key + "_vs_stock"]
        for stage, steps in stages.stage_steps.items():
            s, f = stock["stage_seconds"][stage], fast["stage_seconds"][stage]
            diff = " / ".join(f"{diffs[k][0]:.0f}" + (f" ({diffs[k + ' (same inputs)'][0]:.0f})"
                                                      if k + " (same inputs)" in diffs else "")
                              for k in image_of[stage])
            print(f"| {stage} | {steps} | {s:.3f} | {steps / s:.1f} | {f:.3f} | {steps / f:.1f} | {s / f:.2f}× "
                  f"| {stock['stage_peak_gib'][stage]:.2f} / {fast['stage_peak_gib'][stage]:.2f} | {diff} |")
    s = stock["total_seconds"] if stock else float("nan")
    for key, label in (("compiled", "whole pipeline, fast (compiled, default)"),
                       ("graphs", "whole pipeline, fast (graphs only)"),
                       ("low_memory", "whole pipeline, fast (low memory)")):
        if key in results:
            r = results[key]
            print(f"| {label} | {total_steps} | {s:.3f} | {total_steps / s:.1f} | {r['total_seconds']:.3f} | "
                  f"{total_steps / r['total_seconds']:.1f} | {s / r['total_seconds']:.2f}× | {stock['peak_gib']:.2f} / "
                  f"{r['peak_gib']:.2f} | {max(v[0] for v in results[key + '_vs_stock'].values()):.0f} |")
    if "training" in results:
        t = results["training"]
        print(f"| identity training, {t['photos']} photos, {t['steps']} steps × batch 1 | "
              f"{t['stock']['it_s']:.2f} / {t['fast']['it_s']:.2f} it/s | "
              f"{t['stock']['seconds']:.1f} | | {t['fast']['seconds']:.1f} | | "
              f"{t['stock']['seconds'] / t['fast']['seconds']:.2f}× | {t['stock']['peak_gib']:.2f} / "
              f"{t['fast']['peak_gib']:.2f} | LoRA rel. diff {t['lora_relative_difference']:.4f} |")


if __name__ == "__main__":
    raise SystemExit(main())
