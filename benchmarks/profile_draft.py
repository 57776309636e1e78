"""Where a draft's time goes on the fast path: each stage's host work, its GPU work, and the live render.

Builds the models of ``bench_draft.py`` (SD 1.5-shaped random weights, a speed LoRA and an identity LoRA,
the compiled fast path), warms the draft chain, then prints, per stage and for a live Shading render
(``core.diffusion.live.DraftPreview``):

- the wall time of each named piece (to_pil, preprocess, VAE, step replays, scheduler, LoRA fold, …),
  exclusive of the pieces it calls, over warm runs with nothing added (``host``), with the thread's
  CPU time and page faults in it;
- the same with the GPU synchronised around every piece, so each carries its own GPU work (``serial``);
- the GPU's busy time in each stage (kernels from ``torch.profiler``) against the stage's wall time;
- the captured two-ControlNet steps (their second ControlNet on a second stream) against the same
  steps captured on one stream.

``--trace FILE`` keeps the profiler's chrome trace of one warm chain. Asserts nothing.

    python benchmarks/profile_draft.py --trace /tmp/draft_trace.json.gz
"""

from __future__ import annotations

import argparse
import collections
import functools
import gzip
import json
import resource
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

import torch  # noqa: E402
from bench_draft import DRAFT_STEPS, draft_stages  # noqa: E402
from bench_speed import STEPS, Stages, build, fast_runtime  # noqa: E402
from profile_fast import gpu_ms  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from megaportrait_desktop.core.allocator import keep_freed_memory  # noqa: E402
from megaportrait_desktop.core.diffusion import synthetic  # noqa: E402
from megaportrait_desktop.core.diffusion.devices import choose_device  # noqa: E402
from megaportrait_desktop.core.diffusion.fast import FastOptions  # noqa: E402


class Meter:
    """Exclusive wall time of wrapped callables, by label, into the current bucket."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.sync = False
        self.bucket = "other"
        self.totals: dict[str, dict[str, list[float]]] = collections.defaultdict(lambda: collections.defaultdict(list))
        #: (wall, this thread's CPU time, its minor page faults) by bucket and label, exclusive of named callees.
        self.costs: dict[str, dict[str, list[float]]] = collections.defaultdict(
            lambda: collections.defaultdict(lambda: [0.0, 0.0, 0.0]))
        self._stack: list[list[float]] = []
        self._thread = threading.get_ident()

    def wrap(self, owner: object, name: str, label: str) -> None:
        original = getattr(owner, name)
        meter = self

        @functools.wraps(original)
        def timed(*args, **kwargs):
            if threading.get_ident() != meter._thread:
                return original(*args, **kwargs)
            if meter.sync:
                meter.wait()
            meter._stack.append([time.perf_counter(), 0.0, *_thread_costs(), 0.0, 0.0])
            try:
                with torch.profiler.record_function(label):
                    return original(*args, **kwargs)
            finally:
                if meter.sync:
                    meter.wait()
                start, children, cpu0, faults0, child_cpu, child_faults = meter._stack.pop()
                elapsed = time.perf_counter() - start
                cpu, faults = (now - then for now, then in zip(_thread_costs(), (cpu0, faults0), strict=True))
                meter.totals[meter.bucket][label].append(elapsed - children)
                cost = meter.costs[meter.bucket][label]
                cost[0] += elapsed - children
                cost[1] += cpu - child_cpu
                cost[2] += faults - child_faults
                if meter._stack:
                    meter._stack[-1][1] += elapsed
                    meter._stack[-1][4] += cpu
                    meter._stack[-1][5] += faults

        setattr(owner, name, timed)

    def wait(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, bucket: str, fn):
        """``fn()`` timed as a whole (synchronised) into ``bucket``."""
        self.bucket = bucket
        self.wait()
        start = time.perf_counter()
        with torch.profiler.record_function(f"stage:{bucket}"):
            out = fn()
        self.wait()
        self.totals[bucket]["(whole)"].append(time.perf_counter() - start)
        return out

    def report(self, runs: int, title: str) -> dict:
        out = {}
        print(f"\n{title} (ms per run, median over {runs} runs' sums)")
        for bucket, labels in self.totals.items():
            whole = statistics.median(labels["(whole)"]) * 1000
            per_run = {label: sum(v) / runs * 1000 for label, v in labels.items() if label != "(whole)"}
            named = sum(per_run.values())
            print(f"  {bucket}: {whole:.1f} ms; " + ", ".join(
                f"{label} {ms:.1f}" for label, ms in sorted(per_run.items(), key=lambda kv: -kv[1]) if ms >= 0.2)
                + f"; not named {whole - named:.1f}")
            out[bucket] = {"whole_ms": whole, "pieces_ms": per_run}
            costs = self.costs[bucket]
            print("    this thread's CPU time / page faults per run: " + ", ".join(
                f"{label} {c[1] / runs * 1000:.1f} ms/{c[2] / runs:.0f}" for label, c in
                sorted(costs.items(), key=lambda kv: -kv[1][0]) if c[0] / runs >= 0.0005))
            out[bucket]["thread_cpu_ms"] = {label: c[1] / runs * 1000 for label, c in costs.items()}
            out[bucket]["faults"] = {label: c[2] / runs for label, c in costs.items()}
        self.totals.clear()
        self.costs.clear()
        return out


def _thread_costs() -> tuple[float, float]:
    """This thread's CPU seconds and minor page faults so far."""
    usage = resource.getrusage(resource.RUSAGE_THREAD)
    return time.thread_time(), float(usage.ru_minflt)


def instrument(meter: Meter) -> None:
    from diffusers import (
        AutoencoderKL,
        LCMScheduler,
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionControlNetInpaintPipeline,
    )
    from diffusers.image_processor import VaeImageProcessor

    from megaportrait_desktop.core import classic
    from megaportrait_desktop.core.diffusion import engine, harmonize, live, pair, runtime, shading
    from megaportrait_desktop.core.diffusion.graphs import StepGraph
    from megaportrait_desktop.core.diffusion.lora_fusion import FusedLora
    from megaportrait_desktop.core.diffusion.sampler import Sampler

    for module in (pair, shading, harmonize):
        meter.wrap(module, "to_pil", "to_pil")
        meter.wrap(module, "output_to_float", "output_to_float")
    meter.wrap(classic, "shade", "classic.shade")
    meter.wrap(harmonize, "inpaint_condition", "inpaint_condition")
    meter.wrap(Sampler, "prompt_embeds", "prompt_embeds")
    meter.wrap(Sampler, "_control", "control image")
    meter.wrap(Sampler, "_img2img_latents", "img2img latents")
    meter.wrap(VaeImageProcessor, "preprocess", "preprocess")
    meter.wrap(VaeImageProcessor, "postprocess", "postprocess")
    meter.wrap(AutoencoderKL, "encode", "vae.encode")
    meter.wrap(AutoencoderKL, "decode", "vae.decode")
    meter.wrap(StepGraph, "__call__", "step replay")
    meter.wrap(StepGraph, "set", "step.set")
    meter.wrap(LCMScheduler, "step", "scheduler.step")
    meter.wrap(LCMScheduler, "set_timesteps", "scheduler.set_timesteps")
    meter.wrap(LCMScheduler, "scale_model_input", "scale_model_input")
    meter.wrap(StableDiffusionControlNetInpaintPipeline, "prepare_latents", "inpaint latents")
    meter.wrap(StableDiffusionControlNetInpaintPipeline, "prepare_mask_latents", "mask latents")
    meter.wrap(StableDiffusionControlNetImg2ImgPipeline, "get_timesteps", "get_timesteps")
    meter.wrap(FusedLora, "apply", "lora fold")
    meter.wrap(runtime.LoadedModels, "prepare", "pipeline lookup")
    meter.wrap(engine.DiffusionEngine, "prepare", "engine.prepare")
    meter.wrap(live.ClassicPreview, "scene", "scene")
    meter.wrap(live, "shading_images", "stage_images")
    meter.wrap(live, "pair_images", "stage_images (A, B)")


def gpu_busy(trace: dict) -> dict[str, tuple[float, float]]:
    """Per ``stage:`` annotation: (wall ms, ms in which a kernel, copy or set ran)."""
    events = trace["traceEvents"]
    stages = [(e["name"][6:], e["ts"], e["ts"] + e["dur"]) for e in events
              if e.get("cat") == "user_annotation" and e.get("name", "").startswith("stage:")]
    device = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                    if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset") and "dur" in e)
    out = {}
    for name, start, end in stages:
        busy, reach = 0.0, start
        for s, f in device:
            if f <= reach or s >= end:
                continue
            s = max(s, reach)
            f = min(f, end)
            busy += f - s
            reach = f
        out[name] = ((end - start) / 1000, busy / 1000)
    return out


def parallel_controlnets(models) -> dict:
    """The captured steps with two ControlNets (the fast path runs the second on a second stream), against
    the same step captured with both on one stream: the time each takes and the largest difference."""
    from megaportrait_desktop.core.diffusion.graphs import GraphCache
    from megaportrait_desktop.core.diffusion.sampler import denoise_step

    runtime = models.fast
    cache = GraphCache(runtime.device)
    out = {}
    for key, captured in list(runtime.graphs._graphs.items()):
        roles, cfg = key[0], key[1]
        if len(roles) != 2:
            continue
        nets = [runtime._nets[r] for r in roles]
        serial = cache.get(key, functools.partial(denoise_step, runtime._unet, nets, cfg), captured.inputs)
        same = float((serial().float() - captured().float()).abs().max())
        one, two = gpu_ms(serial, repeat=50), gpu_ms(captured, repeat=50)
        print(f"step {roles} cfg={cfg}: one stream {one:.2f} ms; second ControlNet on a second stream {two:.2f} ms "
              f"(largest difference {same:g})", flush=True)
        out[" + ".join(roles) + f" cfg={cfg}"] = {"one_stream_ms": one, "two_streams_ms": two, "max_diff": same}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--trace", help="write one warm chain's chrome trace here (.json.gz)")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--tiny", action="store_true", help="tiny models, 64 px, on the CPU (smoke test)")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as main.py does for the app and its workers
    device = torch.device("cpu" if args.tiny else "cuda")
    shape, crop = ("tiny", 64) if args.tiny else ("sd15", 512)
    work = Path(tempfile.mkdtemp(prefix="mp-profile-"))
    choice = choose_device(device.type, "auto", "off", fast_path="off")
    models = build(shape, device, choice, work)
    lora = synthetic.save_speed_lora(shape, work / "identity", seed=2)
    speed = synthetic.save_speed_lora(shape, work / "speed", seed=1)
    models.set_lora(str(lora))
    models.set_speed_lora(str(speed))
    models.set_draft(True)
    models.fast = fast_runtime(models, FastOptions(compile=not args.no_compile and not args.tiny),
                               work / "compiled")
    stages = draft_stages(Stages(crop, STEPS), DRAFT_STEPS)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    started = time.perf_counter()
    stages.chain(models, device)
    print(f"{name}: first draft chain {time.perf_counter() - started:.1f} s", flush=True)
    stages.chain(models, device)

    meter = Meter(device)
    instrument(meter)
    out: dict = {"device": name}
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])

    def chain() -> None:
        a, b = meter.run("pair", lambda: stages.pair(models))
        shaded = meter.run("shading", lambda: stages.shade(models, a, b))
        meter.run("harmonize", lambda: stages.harmonize(models, stages.pasted(shaded)))

    for sync, title in ((False, "host: exclusive wall time, nothing added"),
                        (True, "serial: the GPU synchronised around every piece")):
        meter.sync = sync
        for _ in range(args.runs):
            chain()
        out["serial" if sync else "host"] = meter.report(args.runs, title)
    meter.sync = False

    with profile(activities=activities) as prof:
        chain()
    meter.totals.clear()
    meter.costs.clear()
    trace_path = work / "trace.json"
    prof.export_chrome_trace(str(trace_path))
    trace = json.loads(trace_path.read_text())
    busy = gpu_busy(trace)
    print("\nGPU busy per stage (one profiled warm chain; the profiler slows the host a little)")
    for name, (wall, gpu) in busy.items():
        print(f"  {name}: wall {wall:.1f} ms, GPU busy {gpu:.1f} ms ({100 * gpu / wall:.0f}%)")
    out["gpu_busy"] = busy
    if args.trace:
        with gzip.open(args.trace, "wt") as f:
            json.dump(trace, f)

    if device.type == "cuda":
        out["parallel_controlnets"] = parallel_controlnets(models)

    # The live preview's Shading render, as the app runs it.
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.diffusion.live import DraftPreview
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.request import DiffusionParams, RunRequest

    engine = DiffusionEngine(loaded=models)
    request = RunRequest(identity=tuple(str(p) for p in sorted((demo_dir() / "identity").glob("*.jpg"))),
                         reference=str(next((demo_dir() / "reference").iterdir())), engine="diffusion",
                         crop_size=crop, seed=0,
                         diffusion=DiffusionParams(lora=str(lora), speed_lora=str(speed), preview_every=0))
    preview = DraftPreview(lambda: engine)
    preview(request)
    for value in (8.0, 9.0):
        preview(request.replace(shading=replace(request.shading, light_cutoff=value)))
    meter.totals.clear()
    meter.costs.clear()
    for sync, title in ((False, "live Shading render: host"), (True, "live Shading render: serial")):
        meter.sync = sync
        for i in range(args.runs):
            value = 10.0 + i
            meter.run("live shading", lambda v=value: preview(
                request.replace(shading=replace(request.shading, light_cutoff=v))))
        out["live_serial" if sync else "live_host"] = meter.report(args.runs, title)
    with profile(activities=activities) as prof:
        meter.run("live shading", lambda: preview(request.replace(shading=replace(request.shading,
                                                                                  light_cutoff=20.0))))
    prof.export_chrome_trace(str(trace_path))
    for name, (wall, gpu) in gpu_busy(json.loads(trace_path.read_text())).items():
        print(f"  {name}: wall {wall:.1f} ms, GPU busy {gpu:.1f} ms ({100 * gpu / wall:.0f}%)")
        out["live_gpu_busy"] = (wall, gpu)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
