"""The window with a 24-megapixel reference: it keeps answering through a run, a History click and an export,
its time left never claims 0 s while work remains, and Cancel says so at once (issue 15).

The heartbeat bound (250 ms) is generous for a shared CI machine; ``benchmarks/bench_large.py`` prints the real
figures. The window stays responsive because no full-resolution work runs on the GUI thread.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer

from megaportrait_desktop.project import import_references, list_outputs
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.stage_view import REFERENCE_FULL

from ..camera_files import camera_reference

MAX_STALL_MS = 250


# 24-megapixel windows: about 25 s in all (CI runs the slow tests after the suite).
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def camera_file(tmp_path_factory):
    return camera_reference(tmp_path_factory.mktemp("camera") / "portrait_24mp.jpg")


@pytest.fixture
def window(qtbot, tmp_path, camera_file):
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.resize(1280, 720)
    win.show()
    (imported,) = import_references(win.project, [camera_file])
    win.references.refresh()
    win.references.select(imported.item_id)

    def ready() -> bool:
        image, painter = win.stage_view.images.get(REFERENCE_FULL), win.mask_editor.painter
        return image is not None and image.width() == 4000 and painter is not None and painter.shape == (6000, 4000)
    qtbot.waitUntil(ready, timeout=60_000)
    qtbot.wait(1500)  # the live preview of the new reference settles
    yield win
    win.shutdown()


class Heartbeat:
    """A 10 ms QTimer on the GUI thread: the longest gap between its ticks is the longest stall."""

    def __init__(self) -> None:
        self.ticks: list[float] = []
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def __enter__(self) -> Heartbeat:
        self.ticks.append(time.perf_counter())
        self.timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.timer.stop()

    @property
    def longest_ms(self) -> float:
        return float(np.diff(self.ticks).max() * 1000)


def test_the_window_keeps_answering_through_a_24_megapixel_run_history_click_and_export(
        window, qtbot, tmp_path) -> None:
    statuses: list[str] = []
    window.jobs.run_progress.connect(lambda *_: statuses.append(window.panel.status.text()))
    with Heartbeat() as beat:
        with qtbot.waitSignal(window.jobs.run_finished, timeout=120_000) as finished:
            window.run_pipeline("all")
        output_id = finished.args[0].output_id
        qtbot.waitUntil(lambda: f"History as #{output_id}" in window.panel.status.text(), timeout=10_000)
        window.history_actions.show(output_id)
        qtbot.waitUntil(lambda: window.history_actions.shown_output == output_id, timeout=30_000)
        dialog = _export_dialog(window, output_id, tmp_path / "export")
        with qtbot.waitSignal(dialog.exported, timeout=60_000) as exported:
            dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    print(f"24 MP run + History click + 16-bit TIFF export: {len(beat.ticks)} ticks, "
          f"longest event-loop stall {beat.longest_ms:.0f} ms")
    assert beat.longest_ms < MAX_STALL_MS
    assert any("Saving to History" in s for s in statuses)  # saving is shown as a step of the run
    assert not [s for s in statuses if "about 0 s" in s]  # time left never claims nothing is left
    assert window.canvas.image().width() == 4000
    (written,) = exported.args[0]
    assert written.suffix == ".tif" and Image.open(written).size == (4000, 6000)


def _export_dialog(window, output_id: int, folder: Path):
    window.history_actions.export(output_id)
    dialog = window.history_actions.export_dialog
    dialog.preset.setCurrentIndex(dialog.preset.findText("Retouching master (16-bit TIFF, own profile)"))
    dialog.folder.setText(str(folder))
    return dialog


def test_cancel_stops_an_export_and_writes_no_file(window, qtbot, tmp_path) -> None:
    with qtbot.waitSignal(window.jobs.run_finished, timeout=120_000) as finished:
        window.run_pipeline("all")
    dialog = _export_dialog(window, finished.args[0].output_id, tmp_path / "export")
    statuses: list[str] = []
    dialog.progress.valueChanged.connect(lambda _: statuses.append(dialog.status.text()))
    dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: bool(statuses), timeout=30_000)  # it has started writing
    dialog.reject()
    assert dialog.status.text() == "Cancelling…" and dialog.isVisible()  # says so at once, closes once stopped
    qtbot.waitUntil(lambda: not dialog.isVisible(), timeout=30_000)
    assert not list((tmp_path / "export").glob("*.tif")) and dialog.written == []


def test_cancel_says_so_at_once_and_records_nothing(window, qtbot) -> None:
    seen: list[str] = []

    def on_progress(stage: str, *_: object) -> None:
        if stage == "harmonize" and not seen:
            window.cancel_job()
            seen.append(window.panel.status.text())  # right after the click
        elif seen:
            seen.append(window.panel.status.text())  # progress still arriving must not overwrite it
    window.jobs.run_progress.connect(on_progress)
    with qtbot.waitSignal(window.jobs.cancelled, timeout=120_000):
        window.run_pipeline("all")
    assert seen and set(seen) == {"Cancelling…"}
    qtbot.waitUntil(lambda: "Cancelled" in window.panel.status.text(), timeout=5000)
    assert list_outputs(window.project).total == 0 and window.panel.run_all.isEnabled()
