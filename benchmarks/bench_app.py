"""Benchmark the desktop app: launch → window shown (and whether torch was imported by then), and
the cost of brush strokes on a 24-megapixel mask (core painting + overlay update on the canvas).

Prints figures; asserts nothing. Runs offscreen unless DISPLAY is set:
``QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_app.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STARTUP = r"""
import sys, time
t0 = float(sys.argv[1])
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import QTimer
app = QApplication(sys.argv[:1])
from megaportrait_desktop.ui.theme import apply_dark_theme
from megaportrait_desktop.ui.app import create_window
apply_dark_theme(app)
window = create_window()
window.show()
def shown():
    print(f"SHOWN {time.time() - t0:.3f} torch_imported={'torch' in sys.modules}", flush=True)
    window.worker.shutdown()
    app.quit()
QTimer.singleShot(0, shown)  # runs once the event loop has shown and painted the window
app.exec()
"""


def bench_startup(runs: int = 5) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MEGAPORTRAIT_CONFIG": f"{tmp}/config", "MEGAPORTRAIT_MODELS": f"{tmp}/data/models",
               "PYTHONPATH": str(ROOT), "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
        times = []
        for i in range(runs + 1):
            out = subprocess.run([sys.executable, "-c", STARTUP, str(time.time())], env=env, capture_output=True,
                                 text=True, timeout=300)
            line = next((ln for ln in out.stdout.splitlines() if ln.startswith("SHOWN")), None)
            if line is None:
                print("startup failed:", out.stderr[-2000:])
                return
            seconds = float(line.split()[1])
            if i == 0:
                print(f"first start (creates the demo project: imports and face analysis): {seconds:.2f} s, "
                      f"{line.split()[2]}")
            else:
                times.append(seconds)
        print(f"launch → window shown (demo project open): median {statistics.median(times):.2f} s of {runs} "
              f"(min {min(times):.2f}, max {max(times):.2f}), {line.split()[2]}")


def bench_brush() -> None:
    import numpy as np
    from PySide6.QtWidgets import QApplication

    from megaportrait_desktop.core.brush import Brush, MaskPainter
    from megaportrait_desktop.ui.canvas import ImageCanvas

    app = QApplication.instance() or QApplication([])
    h, w = 4000, 6000
    canvas = ImageCanvas()
    canvas.resize(1200, 800)
    mask = np.zeros((h, w), np.uint8)
    painter = MaskPainter(mask)
    canvas.set_mask(painter.mask)
    canvas.show()
    app.processEvents()
    rng = np.random.default_rng(0)
    strokes, moves = [], []
    for size in (50, 200, 600):
        for _ in range(5):
            x, y = rng.uniform(500, w - 500), rng.uniform(500, h - 500)
            t0 = time.perf_counter()
            painter.begin_stroke(x, y, Brush(size=size, hardness=0.5))
            for _ in range(40):  # 40 mouse moves of ~15 screen px at a fit-to-window zoom (~75 image px)
                x, y = x + rng.uniform(-75, 75), y + rng.uniform(-75, 75)
                m0 = time.perf_counter()
                painter.stroke_to(x, y)
                rect = painter.take_dirty()
                if rect:
                    canvas.update_mask(painter.mask, rect)
                moves.append(time.perf_counter() - m0)
            painter.end_stroke()
            rect = painter.take_dirty()
            if rect:
                canvas.update_mask(painter.mask, rect)
            app.processEvents()  # the repaint
            strokes.append((size, time.perf_counter() - t0))
        per = [t for s, t in strokes if s == size]
        per_move = moves[-200:]
        print(f"brush {size:3d} px on a {w}×{h} (24 MP) mask: one 40-move stroke "
              f"{statistics.median(per) * 1000:6.1f} ms "
              f"(incl. repaint); per mouse move median {statistics.median(per_move) * 1000:.2f} ms, "
              f"max {max(per_move) * 1000:.2f} ms")
    t0 = time.perf_counter()
    painter.undo()
    print(f"undo of one stroke: {(time.perf_counter() - t0) * 1000:.1f} ms")


if __name__ == "__main__":
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"QT_QPA_PLATFORM={os.environ['QT_QPA_PLATFORM']}")
    bench_startup()
    bench_brush()
