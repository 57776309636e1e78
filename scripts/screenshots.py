"""Take screenshots of the app's main states on a real X server (see scripts/screenshots).

States: empty start, the demo project, mask editing, a finished run, History. Each is grabbed
from the X server's root window (what a user would see), into the folder given (default
docs/screenshots).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

tmp = Path(tempfile.mkdtemp(prefix="mp-shots-"))
os.environ.setdefault("MEGAPORTRAIT_CONFIG", str(tmp / "config"))
os.environ.setdefault("MEGAPORTRAIT_MODELS", str(tmp / "data" / "models"))

from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"


def settle(app: QApplication, ms: int = 600) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    app.processEvents()


def grab(app: QApplication, name: str) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.png"
    app.primaryScreen().grabWindow(0).save(str(path))
    print(f"wrote {path}")


def wait_for(app: QApplication, condition, timeout_ms: int = 60_000) -> None:
    waited = 0
    while not condition() and waited < timeout_ms:
        settle(app, 100)
        waited += 100


def main() -> int:
    from megaportrait_desktop.project.demo import ensure_demo_project
    from megaportrait_desktop.ui.main_window import MainWindow
    from megaportrait_desktop.ui.theme import apply_dark_theme

    app = QApplication(sys.argv[:1])
    apply_dark_theme(app)
    size = app.primaryScreen().availableGeometry()

    empty = MainWindow()
    empty.setGeometry(size)
    empty.show()
    settle(app, 1000)
    grab(app, "1_empty_start")
    empty.shutdown()
    empty.hide()

    window = MainWindow()
    window.setGeometry(size)
    window.show()
    window.open_project(ensure_demo_project(tmp / "Demo project"))
    window.probe_device()
    wait_for(app, lambda: window.live is not None)
    settle(app, 800)
    grab(app, "2_demo_project")

    editor = window.mask_editor
    editor.paint_toggle.setChecked(True)
    editor.size.setValue(40)
    painter = editor.painter
    from megaportrait_desktop.core.brush import Brush

    painter.begin_stroke(250, 190, Brush(size=40, hardness=0.7))
    for x in range(250, 330, 8):
        painter.stroke_to(x, 190 + (x - 250) // 4)
    painter.end_stroke()
    editor._changed()
    window.canvas.set_zoom(1.6)
    window.canvas.centerOn(240, 160)
    settle(app)
    grab(app, "3_mask_editing")
    painter.undo()
    editor._changed()
    editor.paint_toggle.setChecked(False)

    for light, hf in ((10.0, 10.0), (18.0, 8.0), (6.0, 14.0)):
        window.panel.light_cutoff.setValue(light)
        window.panel.hf_cutoff.setValue(hf)
        done = []
        window.worker.finished.connect(lambda *a, d=done: d.append(1))
        window.run_pipeline("all")
        wait_for(app, lambda d=done: bool(d))
        settle(app, 400)
    window.canvas.fit()
    window.stage_view.compare.setChecked(True)
    window.canvas.set_split(0.45)
    settle(app)
    grab(app, "4_finished_run")

    window.stage_view.compare.setChecked(False)
    window.history.sort.setCurrentIndex(window.history.sort.findData("newest"))
    window.history.list.setCurrentRow(1)
    window.history.raise_()
    settle(app, 800)
    grab(app, "5_history")
    window.act_models.trigger()
    wait_for(app, lambda: window.model_dialog.table.rowCount() > 0, 20_000)
    settle(app, 500)
    grab(app, "6_model_manager")
    window.model_dialog.close()
    window.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
