"""Benchmark: draft quality (a speed LoRA, a few steps a stage) against final, and the live preview's latency.

SD 1.5-sized random-weight models (speed does not depend on the values; what a draft looks like depends
on the speed LoRA and is not judged here), with a random identity LoRA and a random speed LoRA on the
attention layers, as LCM-LoRA has. Sections (``--sections``):

- ``draft``: the four stages chained at draft quality (4 denoising steps a stage, LCM sampler, guidance 1),
  stock diffusers calls against the fast path (the app's default: compiled, CUDA graphs, both LoRAs
  folded); then the same fast path at final quality (30 scheduled UniPC steps, guidance 7): seconds per
  stage and in all, and the largest pixel difference between stock and fast drafts;
- ``live``: the live preview as the app runs it (``core.live_preview.LatestOnlyWorker`` over
  ``core.diffusion.live.DraftPreview`` on the fast path): a Shading slider dragged at 60 moves a second,
  and the time from each move to its image being ready, for every image shown (p50, p95), and after the
  last move.

Prints figures; asserts nothing. ``--json FILE`` keeps them.

    python benchmarks/bench_draft.py                          # CUDA
    python benchmarks/bench_draft.py --tiny --device cpu      # smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from bench_speed import Clock, Stages, build, fast_runtime, levels, release, time_chains  # noqa: E402

from megaportrait_desktop.core.allocator import keep_freed_memory  # noqa: E402
from megaportrait_desktop.core.diffusion import synthetic  # noqa: E402
from megaportrait_desktop.core.diffusion.devices import choose_device  # noqa: E402
from megaportrait_desktop.core.diffusion.fast import FastOptions  # noqa: E402

SECTIONS = ("draft", "live")
DRAFT_STEPS = 4


def draft_stages(stages: Stages, draft_steps: int) -> Stages:
    draft = Stages.__new__(Stages)
    draft.__dict__.update(stages.__dict__)
    draft.params = replace(stages.params, quality="draft", draft_steps=draft_steps, draft_guidance=1.0)
    draft.stage_steps = {"pair": 2 * draft_steps, "shading": draft_steps, "harmonize": draft_steps}
    return draft


def section_draft(models, stages: Stages, device, runs: int, compile_: bool, cache: Path) -> dict:
    draft = draft_stages(stages, DRAFT_STEPS)
    models.set_draft(True)
    stock = time_chains(draft, models, device, runs)
    print(f"draft, stock diffusers: warm chain {stock['total_seconds']:.3f} s "
          + " ".join(f"{k} {v:.3f} s" for k, v in stock["stage_seconds"].items()), flush=True)
    models.fast = fast_runtime(models, FastOptions(compile=compile_), cache)
    fast = time_chains(draft, models, device, runs)
    print(f"draft, fast path{' (compiled)' if compile_ else ''}: first chain {fast['first_seconds']:.1f} s; warm "
          f"chain {fast['total_seconds']:.3f} s " + " ".join(f"{k} {v:.3f} s" for k, v in
                                                               fast["stage_seconds"].items()), flush=True)
    diff = {key: levels(stock["images"][key], fast["images"][key]) for key in ("A", "B", "shaded", "harmonized")}
    print("draft fast vs stock, 8-bit levels (max / mean): "
          + "; ".join(f"{k} {v[0]:.0f} / {v[1]:.2f}" for k, v in diff.items()), flush=True)
    models.set_draft(False)
    final = time_chains(stages, models, device, runs)
    print(f"final, fast path: first chain {final['first_seconds']:.1f} s; warm chain {final['total_seconds']:.3f} s "
          + " ".join(f"{k} {v:.3f} s" for k, v in final["stage_seconds"].items()), flush=True)
    print("\n| stage | draft steps | draft, stock | draft, fast | final, fast | final/draft |")
    print("| --- | --- | --- | --- | --- | --- |")
    for stage in ("pair", "shading", "harmonize"):
        print(f"| {stage} | {draft.stage_steps[stage]} | {stock['stage_seconds'][stage]:.3f} s | "
              f"{fast['stage_seconds'][stage]:.3f} s | {final['stage_seconds'][stage]:.3f} s | "
              f"{final['stage_seconds'][stage] / fast['stage_seconds'][stage]:.1f}× |")
    print(f"| **whole pipeline** | {sum(draft.stage_steps.values())} | {stock['total_seconds']:.3f} s | "
          f"**{fast['total_seconds']:.3f} s** | {final['total_seconds']:.3f} s | "
          f"{final['total_seconds'] / fast['total_seconds']:.1f}× |", flush=True)
    strip = ("images",)
    return {"draft_stock": {k: v for k, v in stock.items() if k not in strip},
            "draft_fast": {k: v for k, v in fast.items() if k not in strip},
            "final_fast": {k: v for k, v in final.items() if k not in strip},
            "draft_levels": diff, "draft_steps": DRAFT_STEPS}


def section_live(models, device, work: Path, lora: Path, speed: Path, crop: int, seconds: float) -> dict:
    """The app's live preview on these models: a Shading slider dragged at 60 moves a second."""
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.diffusion.live import DraftPreview
    from megaportrait_desktop.core.live_preview import LatestOnlyWorker
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.request import DiffusionParams, RunRequest

    engine = DiffusionEngine(loaded=models)
    request = RunRequest(identity=tuple(str(p) for p in sorted((demo_dir() / "identity").glob("*.jpg"))),
                         reference=str(next((demo_dir() / "reference").iterdir())), engine="diffusion",
                         crop_size=crop, seed=0,
                         diffusion=DiffusionParams(lora=str(lora), speed_lora=str(speed), preview_every=0))
    lock = threading.Lock()
    preview = DraftPreview(lambda: engine, lock)
    with Clock(device) as first:
        preview(request)  # the pair, and the draft steps' first capture
    renders = []
    for value in np.linspace(6, 30, 12):  # warm: one Shading render each
        with Clock(device) as c:
            preview(request.replace(shading=replace(request.shading, light_cutoff=float(value))))
        renders.append(c.seconds)
    shown: list[tuple[float, float, int]] = []  # (when it was shown, its request → image seconds, generation)
    asked: list[tuple[float, int]] = []  # (when the slider moved, the move's generation)
    done = threading.Event()
    last = {"generation": 0, "at": 0.0}

    def on_ready(generation: int, images: dict, waited: float) -> None:
        shown.append((time.perf_counter(), waited, generation))
        if generation == last["generation"]:
            last["at"] = time.perf_counter()
            done.set()

    worker = LatestOnlyWorker(preview, on_ready)
    moves = int(seconds * 60)
    start = time.perf_counter()
    for i in range(moves):
        value = 6.0 + 24.0 * (0.5 - 0.5 * np.cos(2 * np.pi * i / 120))  # back and forth, as a hand drags
        moved = time.perf_counter()
        last["generation"] = worker.submit(request.replace(shading=replace(request.shading, light_cutoff=value)))
        asked.append((moved, last["generation"]))
        time.sleep(max(0.0, start + (i + 1) / 60 - time.perf_counter()))
    released = time.perf_counter()
    done.wait(30)
    worker.shutdown()
    settle = last["at"] - released
    during = [waited for at, waited, _ in shown if at <= released]
    gaps = np.diff([start] + [at for at, _, _ in shown if at <= released])
    p50, p95 = float(np.percentile(during, 50)), float(np.percentile(during, 95))
    # Strictly: from each move to the first image on the canvas of that value or a newer one.
    caught_up = [next((at for at, _, g in shown if g >= generation), np.nan) - moved for moved, generation in asked]
    m50, m95 = float(np.nanpercentile(caught_up, 50)), float(np.nanpercentile(caught_up, 95))
    print(f"live preview, Shading slider: first render (pair + shading) {first.seconds:.2f} s; a Shading render "
          f"{statistics.median(renders) * 1000:.0f} ms (median of {len(renders)}); during a {seconds:.0f} s drag at "
          f"60 moves/s: {len(during)} images shown ({len(during) / seconds:.1f} a second; longest wait between two "
          f"{gaps.max() * 1000:.0f} ms) for {moves} moves ({worker.dropped} moves overtaken); each image's settings "
          f"were asked for p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms before it was shown; a move → the canvas "
          f"shows that value or a newer one p50 {m50 * 1000:.0f} ms, p95 {m95 * 1000:.0f} ms; after the release "
          f"the last value's image {settle * 1000:.0f} ms; only the shading re-rendered: "
          f"{preview.rendered == 'shading'}", flush=True)
    return {"first_seconds": first.seconds, "shading_render_ms": statistics.median(renders) * 1000,
            "moves": moves, "images_during_drag": len(during), "images_per_second": len(during) / seconds,
            "longest_gap_ms": float(gaps.max()) * 1000, "dropped": worker.dropped, "p50_ms": p50 * 1000,
            "p95_ms": p95 * 1000, "move_to_canvas_p50_ms": m50 * 1000, "move_to_canvas_p95_ms": m95 * 1000,
            "settle_ms": settle * 1000}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny models and a 64 px crop (smoke test)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--runs", type=int, default=5, help="timed chains per path (after a first one)")
    parser.add_argument("--no-compile", action="store_true", help="graphs only (no torch.compile)")
    parser.add_argument("--drag-seconds", type=float, default=4.0)
    parser.add_argument("--sections", default=",".join(SECTIONS))
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as main.py does for the app and its workers
    device = torch.device(args.device)
    shape = "tiny" if args.tiny else "sd15"
    crop = 64 if args.tiny else 512
    work = Path(tempfile.mkdtemp(prefix="mp-draft-"))
    choice = choose_device(args.device, "auto", "off", fast_path="off")
    info = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__, "shape": shape, "crop": crop}
    print(f"{info['device']}, torch {info['torch']}, {shape} models, {crop} px crop", flush=True)
    with Clock(device) as c:
        models = build(shape, device, choice, work)
    lora = synthetic.save_speed_lora(shape, work / "identity", seed=2)  # a random identity LoRA
    speed = synthetic.save_speed_lora(shape, work / "speed", seed=1)
    models.set_lora(str(lora))
    models.set_speed_lora(str(speed))
    print(f"models built in {c.seconds:.1f} s", flush=True)
    from bench_speed import STEPS

    stages = Stages(crop, STEPS)
    out: dict = {"info": info}
    sections = [s for s in args.sections.split(",") if s]
    if "draft" in sections:
        out["draft"] = section_draft(models, stages, device, args.runs, not args.no_compile, work / "compiled")
    if "live" in sections:
        if models.fast is None:
            models.fast = fast_runtime(models, FastOptions(compile=not args.no_compile), work / "compiled")
        out["live"] = section_live(models, device, work, lora, speed, crop, args.drag_seconds)
    release(models)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
