"""Benchmark the project store: open + one history page with 10,000 outputs; importing 100 photos.

Prints figures; asserts nothing. Run: ``.venv/bin/python benchmarks/bench_project.py [--keep DIR]``.
Target (issue 4): open a 10,000-output project and list a page of 100 rows in under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from megaportrait_desktop.core.paths import demo_dir  # noqa: E402
from megaportrait_desktop.project import OutputQuery, Project, import_identity_photos, list_outputs  # noqa: E402


def build_history(root: Path, count: int) -> None:
    project = Project.create(root, "bench")
    identities = [project.create_identity(f"client {i}") for i in range(20)]
    rng = np.random.default_rng(0)
    # 50 distinct finals, cycled: content addressing stores each once; the rows are all distinct.
    finals = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(50)]
    project.files.durable = False  # bulk fill only: no fsync per file
    started = time.perf_counter()
    for i in range(count):
        project.record_output(request={"seed": i}, engine="classic", final=finals[i % 50],
                              identity_id=identities[i % 20], identity_score=float(rng.random()),
                              tags=("keeper",) if i % 17 == 0 else (), created=1.7e9 + i * 60)
    print(f"filled {count} outputs in {time.perf_counter() - started:.1f} s "
          f"({(time.perf_counter() - started) / count * 1000:.2f} ms per recorded output, no fsync)")
    project.close()


def time_open_and_page(root: Path, query: OutputQuery, label: str, repeat: int = 15) -> None:
    times, page_only = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        project = Project.open(root)
        t1 = time.perf_counter()
        page = list_outputs(project, query)
        t2 = time.perf_counter()
        project.close()
        times.append((t2 - t0) * 1000)
        page_only.append((t2 - t1) * 1000)
    print(f"open + page of {len(page.items)} ({label}): median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms; the page query alone {statistics.median(page_only):.1f} ms "
          f"(of {page.total} rows)")


def make_photos(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    sources = [Image.open(p).convert("RGB") for p in sorted((demo_dir() / "identity").glob("*.jpg"))]
    paths = []
    for i in range(count):
        im = sources[i % len(sources)]
        w, h = im.size
        dx, dy = (i * 7) % 40, (i * 5) % 40
        im = im.crop((dx, dy, w - 40 + dx, h - 40 + dy))
        im = ImageEnhance.Brightness(im).enhance(0.8 + i * 0.004)  # every photo distinct
        if i % 3 == 0:
            im = ImageOps.mirror(im)
        path = folder / f"photo_{i:03d}.jpg"
        im.save(path, quality=92)
        paths.append(path)
    return paths


def bench_import(root: Path, count: int) -> None:
    photos = make_photos(root / "photos", count)
    project = Project.create(root / "import-bench")
    identity = project.create_identity("client")
    started = time.perf_counter()
    last = [started]

    def progress(done: int, total: int, result) -> None:
        now = time.perf_counter()
        if done % 10 == 0 or done == total:
            rate = done / (now - started)
            eta = (total - done) / rate if rate else 0
            print(f"  [{done:3d}/{total}] {Path(result.path).name}: {result.status} "
                  f"({(now - last[0]) * 1000:.0f} ms, ETA {eta:.1f} s)")
        last[0] = now

    results = import_identity_photos(project, identity, photos, on_progress=progress)
    elapsed = time.perf_counter() - started
    statuses = {s: sum(r.status == s for r in results) for s in ("imported", "duplicate", "rejected")}
    print(f"imported {count} photos (face detection, 478-point mesh, quality) in {elapsed:.1f} s, "
          f"{elapsed / count * 1000:.0f} ms per photo: {statuses}")
    project.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--outputs", type=int, default=10_000)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--keep", help="build in this folder and keep it")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="mp-bench-"))
    try:
        history = base / "history"
        if not (history / "project.db").exists():
            build_history(history, args.outputs)
        time_open_and_page(history, OutputQuery(page_size=100), "newest first")
        time_open_and_page(history, OutputQuery(page_size=100, sort="score"), "by identity score")
        time_open_and_page(history, OutputQuery(page_size=100, identity_id=7, sort="rating"), "one identity, by rating")
        time_open_and_page(history, OutputQuery(page_size=100, tag="keeper"), "tag filter")
        time_open_and_page(history, OutputQuery(page_size=100, page=90), "page 91, newest first")
        bench_import(base, args.photos)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
