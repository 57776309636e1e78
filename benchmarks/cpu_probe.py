"""What a draft's CPU work on a 512 crop costs on this machine: the allocator, OpenCV's threads, CUDA's start.

Times, on random 512×512 RGB float32 crops, the Shading stage's frequency separation
(``classic.shade``), the float → 8-bit conversion (``to_uint8`` and NumPy's formula), a copy and a
blur, with the minor page faults of each call: first with glibc's default allocator, then tuned as the
app tunes it (``core.allocator.keep_freed_memory``), with OpenCV on 1 to 8 threads, and with CUDA
started. Prints figures; asserts nothing.

    python benchmarks/cpu_probe.py
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from megaportrait_desktop.core import classic  # noqa: E402
from megaportrait_desktop.core.allocator import keep_freed_memory  # noqa: E402
from megaportrait_desktop.core.imaging import to_uint8  # noqa: E402
from megaportrait_desktop.core.request import ShadingParams  # noqa: E402


def timed(fn, runs: int = 40) -> str:
    """Milliseconds and page faults per call of ``fn`` (after one call)."""
    fn()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    for _ in range(runs):
        fn()
    seconds = (time.perf_counter() - start) / runs
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / runs
    return f"{seconds * 1000:.2f} ms ({faults:.0f} faults)"


def main() -> int:
    rng = np.random.default_rng(0)
    a, b = (rng.random((512, 512, 3), dtype=np.float32) for _ in range(2))
    cores = len(os.sched_getaffinity(0))

    def row(label: str) -> None:
        print(f"{label}: shade {timed(lambda: classic.shade(a, b, ShadingParams()))}; "
              f"to_uint8 {timed(lambda: to_uint8(a))}; "
              f"numpy uint8 {timed(lambda: np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8))}; "
              f"copy {timed(a.copy)}; blur {timed(lambda: cv2.GaussianBlur(a, (0, 0), 3.0))}", flush=True)

    print("cv2 threads", cv2.getNumThreads(), "torch threads", torch.get_num_threads(), "cpus", cores)
    row("default allocator")
    print("keep_freed_memory", keep_freed_memory())
    row("tuned allocator")
    for threads in (1, 2, 4, 8):
        cv2.setNumThreads(threads)
        row(f"cv2 {threads} threads")
    if torch.cuda.is_available():
        cv2.setNumThreads(cores)
        torch.zeros(1, device="cuda")
        row("CUDA initialised, cv2 all threads")
        cv2.setNumThreads(1)
        row("CUDA initialised, cv2 1 thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
