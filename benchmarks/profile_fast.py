"""Where the fast path's time goes: step replays, VAE, text encoder, scheduler, kernels, and variants.

Runs the benchmark's stages once on the fast path (SD 1.5-shaped random models, CUDA), then times
each part with CUDA events (medians) and prints a breakdown:

- replay of each stage's captured step, and the same step run eagerly (launch overhead);
- VAE encode and decode at the crop size, the text encoder, one scheduler step;
- the top CUDA kernels of one eager step (torch.profiler), grouped by kind;
- the step with other attention backends, in channels-last, and compiled (``--compile``).

    python benchmarks/profile_fast.py [--compile]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from bench_speed import Stages, build, fast_runtime  # noqa: E402

from megaportrait_desktop.core.diffusion.devices import choose_device  # noqa: E402
from megaportrait_desktop.core.diffusion.fast import FastOptions  # noqa: E402
from megaportrait_desktop.core.diffusion.graphs import GraphCache  # noqa: E402
from megaportrait_desktop.core.diffusion.sampler import denoise_step  # noqa: E402


def gpu_ms(fn, repeat: int = 20, warmup: int = 3) -> float:
    """Median milliseconds of ``fn`` on the GPU (CUDA events around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def wall_ms(fn, repeat: int = 10) -> float:
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def kernel_table(fn, top: int = 15) -> None:
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    groups: dict[str, float] = {}
    total = 0.0
    for e in prof.key_averages():
        us = e.device_time_total
        if us <= 0:
            continue
        total += us
        name = e.key.lower()
        kind = ("attention" if any(k in name for k in ("flash", "fmha", "attention", "sdpa")) else
                "conv" if any(k in name for k in ("conv", "cudnn", "implicit", "winograd", "xmma_fprop", "sm90_xmma"))
                else "gemm" if any(k in name for k in ("gemm", "cutlass", "sm90_", "nvjet")) else
                "norm" if "norm" in name else "elementwise/other")
        groups[kind] = groups.get(kind, 0.0) + us
    print(f"  kernels of one eager step: {total / 1000:.2f} ms of GPU time; "
          + ", ".join(f"{k} {v / 1000:.2f} ms ({100 * v / total:.0f}%)" for k, v in sorted(groups.items(),
                                                                                         key=lambda kv: -kv[1])))
    for e in sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:top]:
        print(f"    {e.device_time_total / 1000:7.3f} ms  {e.count:4d}×  {e.key[:110]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device("cuda")
    choice = choose_device("cuda", "auto", "off", fast_path="off")
    import tempfile

    work = Path(tempfile.mkdtemp())
    models = build("sd15", device, choice, work)
    stages = Stages(512, args.steps)
    models.fast = fast_runtime(models, FastOptions())
    with torch.inference_mode():
        t = time.perf_counter()
        stages.chain(models, device)
        print(f"first chain (captures) {time.perf_counter() - t:.2f} s; captures: "
              + ", ".join(f"{c['seconds']:.2f} s" for c in models.fast.captures))
        wall = wall_ms(lambda: stages.chain(models, device), repeat=3)
        print(f"warm chain {wall:.0f} ms")
        rt = models.fast
        entries = list(rt.graphs._graphs.items())
        for key, step in entries:
            replay = gpu_ms(step)
            eager = gpu_ms(lambda step=step: step.fn(**step.inputs), repeat=5)
            print(f"step {key[0]} batch {key[2][0]}: replay {replay:.2f} ms, eager {eager:.2f} ms")
        key, step = entries[0]
        kernel_table(lambda: step.fn(**step.inputs))
        key2, step2 = next((k, s) for k, s in entries if len(k[0]) == 2)
        kernel_table(lambda: step2.fn(**step2.inputs), top=8)

        vae, pipe = models.components["vae"], models.pipe("img2img", "face_controlnet")
        x = torch.randn(1, 3, 512, 512, device=device, dtype=choice.dtype)
        z = torch.randn(1, 4, 64, 64, device=device, dtype=choice.dtype)
        enc = gpu_ms(lambda: vae.encode(x).latent_dist.mean, repeat=10)
        dec = gpu_ms(lambda: vae.decode(z).sample, repeat=10)
        text = wall_ms(lambda: pipe.encode_prompt("a photo of sks person", device, 1, True, "blurry"), repeat=10)
        print(f"VAE encode {enc:.1f} ms, decode {dec:.1f} ms (eager); text encoder {text:.1f} ms")
        dec_wall = wall_ms(lambda: vae.decode(z).sample)
        print(f"VAE decode wall {dec_wall:.1f} ms")

        sched = pipe.scheduler
        sched.set_timesteps(30, device=device)
        sched.sigmas = sched.sigmas.to(device)
        sched.set_begin_index(0)
        lat = torch.randn(1, 4, 64, 64, device=device, dtype=choice.dtype)

        def one_scheduler_pass():
            sched._step_index = None
            sched.lower_order_nums = 0
            sched.model_outputs = [None] * sched.config.solver_order
            sched.last_sample = None
            out = lat
            for t in sched.timesteps[:10]:
                out = sched.step(lat, t, out, return_dict=False)[0]
        print(f"scheduler: {wall_ms(one_scheduler_pass, repeat=5) / 10:.2f} ms per step (wall, host-bound)")

        from torch.nn.attention import SDPBackend, sdpa_kernel

        for backend in (SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION):
            try:
                with sdpa_kernel([backend]):
                    cache = GraphCache(device)
                    s = cache.get("x", step.fn, step.inputs)
                print(f"step {key[0]} with {backend.name}: replay {gpu_ms(s):.2f} ms")
            except Exception as exc:  # noqa: BLE001 - a backend may not support these shapes
                print(f"step with {backend.name}: {type(exc).__name__}: {str(exc)[:200]}")

        unet = models.components["unet"]
        nets = [models.controlnets[r] for r in key[0]]
        for module in (unet, *models.controlnets.values()):
            module.to(memory_format=torch.channels_last)
        cache = GraphCache(device)
        s = cache.get("cl", functools.partial(denoise_step, unet, nets, True), step.inputs)
        eager = gpu_ms(lambda: s.fn(**s.inputs), 5)
        print(f"step {key[0]} channels-last: replay {gpu_ms(s):.2f} ms, eager {eager:.2f} ms")
        vae.to(memory_format=torch.channels_last)
        print(f"VAE channels-last: encode {gpu_ms(lambda: vae.encode(x).latent_dist.mean, repeat=10):.1f} ms, "
              f"decode {gpu_ms(lambda: vae.decode(z).sample, repeat=10):.1f} ms")

        if args.compile:
            import torch._inductor.config as inductor

            inductor.conv_1x1_as_mm = True
            cu = torch.compile(unet, fullgraph=True, dynamic=False)
            cn = [torch.compile(n, fullgraph=True, dynamic=False) for n in nets]
            t = time.perf_counter()
            cache = GraphCache(device)
            s = cache.get("compiled", functools.partial(denoise_step, cu, cn, True), step.inputs)
            print(f"compiled step (channels-last): compile+capture {time.perf_counter() - t:.1f} s, "
                  f"replay {gpu_ms(s):.2f} ms")
            t = time.perf_counter()
            cdec = torch.compile(vae.decoder, fullgraph=True, dynamic=False)
            zz = vae.post_quant_conv(z)
            cdec(zz)
            print(f"compiled VAE decoder: compile {time.perf_counter() - t:.1f} s, "
                  f"{gpu_ms(lambda: cdec(zz), repeat=10):.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
