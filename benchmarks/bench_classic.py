"""Benchmark: frequency maps at 1024² and 4096², and the whole classic engine on the demo.

Prints figures; asserts nothing. Run: ``.venv/bin/python benchmarks/bench_classic.py``.
Target (issue 2): light map + HF-map + recombination at 4096² under 100 ms on a 2-core machine.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from megaportrait_desktop.core import frequency  # noqa: E402


def _median_ms(fn, repeat: int) -> float:
    fn()  # warm-up: thread pools, allocator
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def bench_maps(size: int, light_cutoff: float, hf_cutoff: float, repeat: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.random((size, size, 3), dtype=np.float32)
    b = rng.random((size, size, 3), dtype=np.float32)
    light = frequency.light_map(a, light_cutoff)
    hf = frequency.hf_map(b, hf_cutoff)
    t_light = _median_ms(lambda: frequency.light_map(a, light_cutoff), repeat)
    t_hf = _median_ms(lambda: frequency.hf_map(b, hf_cutoff), repeat)
    t_rec = _median_ms(lambda: frequency.recombine(light, hf), repeat)
    t_all = _median_ms(lambda: frequency.recombine(frequency.light_map(a, light_cutoff),
                                                   frequency.hf_map(b, hf_cutoff)), repeat)
    maps = frequency.FrequencySeparation(a, b)
    t_setup = _median_ms(lambda: frequency.FrequencySeparation(a, b).update(light_cutoff, hf_cutoff), repeat)
    # A slider move: the cut-offs change a little, the reduced copies are reused.
    moves = iter(np.linspace(0.9, 1.1, 1000))
    t_live = _median_ms(lambda: maps.update(light_cutoff * next(moves), hf_cutoff * next(moves)), repeat)
    print(f"maps {size}²  (cut-offs {light_cutoff:g}/{hf_cutoff:g} px): light {t_light:6.1f} ms, "
          f"HF {t_hf:6.1f} ms, recombine {t_rec:6.1f} ms, all three (functions) {t_all:6.1f} ms; "
          f"FrequencySeparation first update {t_setup:6.1f} ms, slider move {t_live:6.1f} ms")


def bench_demo(repeat: int) -> None:
    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.request import RunRequest

    demo = demo_dir()
    request = RunRequest(identity=tuple(str(p) for p in sorted((demo / "identity").glob("*.jpg"))),
                         reference=str(next((demo / "reference").glob("*.jpg"))))
    _time_runs("classic engine on the demo", request, repeat)


def _time_runs(label: str, request, repeat: int) -> None:
    """Print the median wall time of ``repeat`` runs of ``request`` and of each stage, after a warm-up run
    (MediaPipe's graphs)."""
    from megaportrait_desktop.core.pipeline import run

    run(request)
    walls, stages = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        result = run(request)
        walls.append(time.perf_counter() - t)
        stages.append(result.timings)
    per_stage = {k: statistics.median(s[k] for s in stages) * 1000 for k in stages[0]}
    print(f"{label} ({result.final.width}×{result.final.height}): {statistics.median(walls) * 1000:.0f} ms "
          f"median of {repeat} (" + ", ".join(f"{k} {v:.0f} ms" for k, v in per_stage.items()) + ")")


def bench_large(repeat: int) -> None:
    """The classic engine on a 24 MP reference (the demo's, enlarged to 6000×4000 around its face).

    Everything the classic engine adds per run works in the face crop (``crop_size``), so only paste-back and
    harmonisation grow with the photo, over the face's box.
    """
    import tempfile

    import cv2

    from megaportrait_desktop.core.paths import demo_dir
    from megaportrait_desktop.core.request import RunRequest

    demo = demo_dir()
    reference = cv2.imread(str(next((demo / "reference").glob("*.jpg"))))
    large = cv2.resize(reference, (4000, 4000), interpolation=cv2.INTER_CUBIC)
    large = cv2.copyMakeBorder(large, 0, 0, 1000, 1000, cv2.BORDER_REFLECT_101)  # 6000 × 4000
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "reference_24mp.png"
        cv2.imwrite(str(path), large)
        request = RunRequest(identity=tuple(str(p) for p in sorted((demo / "identity").glob("*.jpg"))),
                             reference=str(path))
        _time_runs("classic engine, 24 MP reference", request, repeat)


if __name__ == "__main__":
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    for cutoffs in ((10.0, 10.0), (80.0, 80.0)):
        bench_maps(1024, *cutoffs, repeat=20)
        bench_maps(4096, *cutoffs, repeat=5)
    bench_demo(repeat=5)
    bench_large(repeat=3)
