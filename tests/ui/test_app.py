"""The app, offscreen: demo project, selection, mask painting, live preview, runs, cancel, errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPoint, Qt, QTimer
from PySide6.QtWidgets import QMessageBox

from megaportrait_desktop.project import import_references
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.images import from_qimage


@pytest.fixture
def window(qtbot, tmp_path):
    demo = ensure_demo_project(tmp_path / "demo")
    win = create_window(demo)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitUntil(lambda: "shaded" in win.stage_view.images, timeout=20_000)  # the live preview is ready
    yield win
    win.shutdown()


def _outputs(win) -> int:
    from megaportrait_desktop.project import list_outputs

    return list_outputs(win.project).total


def test_opens_the_demo_project_with_identity_and_reference(window) -> None:
    assert window.project.name == "Demo"
    assert window.identities.list.count() == 1 and window.references.gallery.count() == 1
    assert window.identities.current_id() and window.references.current_id()
    image = window.canvas.image()
    assert (image.width(), image.height()) == (512, 512)  # the reference, full size
    assert window.mask_editor.painter is not None and window.mask_editor.painter.mask.max() == 255


def test_paint_a_stroke_and_undo_it(window, qtbot) -> None:
    painter = window.mask_editor
    before = painter.painter.mask.copy()
    painter.paint_toggle.setChecked(True)
    painter.size.setValue(30)
    canvas = window.canvas
    start = canvas.mapFromScene(40, 450)
    end = canvas.mapFromScene(160, 450)
    viewport = canvas.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=start)
    for x in np.linspace(start.x(), end.x(), 8):
        qtbot.mouseMove(viewport, QPoint(int(x), start.y()))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=end)
    mask = painter.painter.mask
    assert mask[450, 100] == 255 and before[450, 100] == 0  # painted where the mouse went
    assert (mask != before).sum() > 1000 and painter.dirty
    window.act_undo.trigger()  # Ctrl+Z
    assert np.array_equal(painter.painter.mask, before)
    window.act_redo.trigger()  # Ctrl+Shift+Z
    assert painter.painter.mask[450, 100] == 255
    version = window.save_mask()
    ref_id = window.references.current_id()
    saved = np.asarray(Image.open(window.project.path_of(window.project.current_mask(ref_id).path)))
    assert version == 1 and saved[450, 100] == 255


def test_moving_a_slider_changes_the_preview(window, qtbot) -> None:
    window.stage_view.show_stage("shaded")
    before = from_qimage(window.canvas.image())
    assert before.shape == (512, 512, 3)
    window.panel.light_cutoff.setValue(5.0)  # from 30: the light map keeps much finer shading
    qtbot.waitUntil(lambda: not np.array_equal(from_qimage(window.canvas.image()), before), timeout=2000)
    after = from_qimage(window.canvas.image())
    assert np.abs(after.astype(int) - before).mean() > 1
    window.stage_view.show_stage("hf_map")
    hf_before = from_qimage(window.canvas.image())
    window.panel.hf_cutoff.setValue(3.0)
    qtbot.waitUntil(lambda: not np.array_equal(from_qimage(window.canvas.image()), hf_before), timeout=2000)


def test_run_all_through_the_worker_adds_a_history_row(window, qtbot) -> None:
    rows = window.history.list.count()
    with qtbot.waitSignal(window.worker.finished, timeout=60_000) as blocker:
        window.panel.run_all.click()
    result, output_id = blocker.args[1].result, blocker.args[1].output_id
    assert output_id > 0 and result.final.pixels.shape == (512, 512, 3)
    qtbot.waitUntil(lambda: window.history.list.count() == rows + 1, timeout=5000)
    qtbot.waitUntil(lambda: "History as #" in window.panel.status.text(), timeout=5000)
    assert _outputs(window) == 1
    assert from_qimage(window.canvas.image()).shape == (512, 512, 3)


def test_stage_buttons_run_up_to_their_stage(window, qtbot) -> None:
    with qtbot.waitSignal(window.worker.finished, timeout=60_000) as blocker:
        window.panel.stage_buttons["identity"].click()
    result, output_id = blocker.args[1].result, blocker.args[1].output_id
    assert output_id == 0 and set(result.stages) == {"reference", "A", "B"} and _outputs(window) == 0


def _big_reference(window, tmp_path, astronaut) -> None:
    big = np.asarray(Image.fromarray(astronaut).resize((4000, 4000), Image.Resampling.BICUBIC))
    Image.fromarray(big).save(tmp_path / "big.png")
    (res,) = import_references(window.project, [tmp_path / "big.png"])
    window.references.refresh()
    window.references.select(res.item_id)


@pytest.mark.slow
def test_cancel_a_running_job_records_nothing(window, qtbot, tmp_path, astronaut) -> None:
    _big_reference(window, tmp_path, astronaut)
    seen = []
    window.worker.progress.connect(lambda job, stage, *_: (seen.append(stage), stage == "identity"
                                                           and window.cancel_job()))
    with qtbot.waitSignal(window.worker.cancelled, timeout=60_000):
        window.run_pipeline("all")
    # pytest-qt hears the worker's signal on the worker thread; the window's slot runs on the GUI thread.
    qtbot.waitUntil(lambda: "Cancelled" in window.panel.status.text(), timeout=5000)
    assert "identity" in seen and "harmonize" not in seen
    assert _outputs(window) == 0
    assert window.panel.run_all.isEnabled()


@pytest.mark.slow
def test_event_loop_keeps_turning_while_a_job_runs(window, qtbot, tmp_path, astronaut) -> None:
    _big_reference(window, tmp_path, astronaut)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    with qtbot.waitSignal(window.worker.finished, timeout=120_000):
        window.run_pipeline("all")
    timer.stop()
    gaps = np.diff(ticks) * 1000
    print(f"event loop during a {len(ticks) * 10 / 1000:.1f} s job: {len(ticks)} ticks, "
          f"max gap {gaps.max():.0f} ms, median {np.median(gaps):.0f} ms")
    assert len(ticks) > 20 and gaps.max() < 500


def test_a_missing_model_shows_its_dialog(window, qtbot) -> None:
    window.panel.engine.setCurrentIndex(window.panel.engine.findData("diffusion"))
    with qtbot.waitSignal(window.worker.failed, timeout=60_000) as blocker:
        window.run_pipeline("all")
    failure = blocker.args[1]
    assert failure.kind == "models" and "model" in failure.message.lower()
    qtbot.waitUntil(lambda: getattr(window, "last_error", None) is not None, timeout=5000)
    box = window.last_error
    assert isinstance(box, QMessageBox) and box.isVisible()
    labels = [b.text() for b in box.buttons()]
    assert "Open the model manager" in labels
    assert "Failed" in window.panel.status.text() and window.panel.run_all.isEnabled()
    box.close()


def test_drop_portraits_on_the_gallery_imports_them(window, qtbot, photo_files, grace) -> None:
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    Image.fromarray(grace).save(photo_files["reference"].with_name("grace_ref.png"))
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo_files["reference"].with_name("grace_ref.png"))),
                  QUrl.fromLocalFile(str(photo_files["reference"].with_name("notes.txt")))])
    gallery = window.references.gallery
    event = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    gallery.dropEvent(event)
    qtbot.waitUntil(lambda: gallery.count() == 2, timeout=20_000)
    assert window.project.references()[-1].name == "grace_ref"


def test_recall_settings_restores_the_sliders(window, qtbot) -> None:
    window.panel.light_cutoff.setValue(22.0)
    window.panel.a_strength.setValue(0.3)
    with qtbot.waitSignal(window.worker.finished, timeout=60_000) as blocker:
        window.run_pipeline("all")
    output_id = blocker.args[1].output_id
    window.panel.light_cutoff.setValue(5.0)
    window.panel.a_strength.setValue(0.0)
    window.history_actions.recall(output_id)
    assert window.panel.light_cutoff.value() == pytest.approx(22.0)
    assert window.panel.a_strength.value() == pytest.approx(0.3)


def test_model_manager_opens_from_the_menu_and_lists_each_role(window, qtbot) -> None:
    window.act_models.trigger()
    dialog = window.model_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 9, timeout=20_000)
    states = [dialog.table.item(row, 1).text() for row in range(9)]
    # Nothing installed in the test's models folder (the five diffusion roles and the speed LoRA); the identity
    # scorer (dlib) comes with the app.
    assert states == ["missing"] * 6 + ["installed"] + ["missing"] * 2
    qtbot.waitUntil(lambda: not dialog._workers, timeout=20_000)
    dialog.close()


def test_dock_layout_and_recent_projects_are_restored(window, qtbot, tmp_path) -> None:
    window.history.hide()
    window.pipeline_dock.setFloating(False)
    root = window.project.root
    window.close()  # saves the layout and lets go of the project (one window writes a project at a time)
    again = create_window()  # no project given: the most recent one opens
    qtbot.addWidget(again)
    again.show()
    try:
        assert again.project.root == root
        assert not again.history.isVisible() and again.pipeline_dock.isVisible()
        assert again.recent_menu.actions()[0].text() == str(root)
    finally:
        again.shutdown()
