"""The first hour with the app (issue 19), offscreen with pytest-qt: keys and the shortcut list, the mask
overlay and the before/after line, projects and identities, History, export and what comes back on reopen."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QInputDialog, QMessageBox, QTableWidget

from megaportrait_desktop.core.stages import Stage
from megaportrait_desktop.project import Project, list_outputs
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.project.exchange import read_embedded_provenance
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.images import from_qimage
from megaportrait_desktop.ui.stage_view import REFERENCE_FULL


@pytest.fixture
def window(qtbot, tmp_path):
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    win.activateWindow()
    qtbot.waitUntil(lambda: "shaded" in win.stage_view.images, timeout=20_000)
    qtbot.waitUntil(lambda: win.mask_editor.painter is not None, timeout=20_000)
    yield win
    win.shutdown()


def _run(window, qtbot, stage: str = "all") -> int:
    with qtbot.waitSignal(window.jobs.run_finished, timeout=60_000) as blocker:
        window.run_pipeline(stage)
    return blocker.args[0].output_id


def _key(qtbot, window, key: str) -> None:
    """A key as the user presses it with the canvas focused: it reaches the window's shortcuts."""
    window.canvas.setFocus()
    qtbot.keyClicks(window.canvas.viewport(), key)


def _drop(drops, view, files, point: QPoint) -> None:
    """Files dropped from a file manager onto a list: the event a real drop delivers to its viewport, handed
    to the list's drop handler (Qt delivers a drop only during a drag, which offscreen tests cannot start)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(f)) for f in files])
    event = QDropEvent(QPointF(point), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    assert drops.eventFilter(view.viewport(), event) and event.isAccepted()


# ----------------------------------------------------------------------------------------------- keys


def test_single_key_tools_work_from_the_keyboard(window, qtbot) -> None:
    editor = window.mask_editor
    assert not editor.paint_toggle.isChecked() and editor.brush_button.isChecked()
    _key(qtbot, window, "e")  # E: eraser, and painting starts on the reference
    assert editor.eraser_button.isChecked() and editor.paint_toggle.isChecked()
    assert window.stage_view.current() == REFERENCE_FULL
    _key(qtbot, window, "x")  # X: swap
    assert editor.brush_button.isChecked()
    size = editor.size.value()
    _key(qtbot, window, "]")
    assert editor.size.value() == round(size * 1.25)
    _key(qtbot, window, "[")
    _key(qtbot, window, "[")
    assert editor.size.value() < size
    _key(qtbot, window, "p")  # P: paint mode off (and on again)
    assert not editor.paint_toggle.isChecked()
    _key(qtbot, window, "b")  # B: brush, painting again
    assert editor.brush_button.isChecked() and editor.paint_toggle.isChecked()
    # Typing in a text field types: the single keys do nothing there.
    window.history.tags.setFocus()
    qtbot.keyClicks(window.history.tags, "bxe")
    assert window.history.tags.text() == "bxe" and editor.brush_button.isChecked()


def test_backslash_shows_before_after_and_the_line_is_dragged_on_the_image(window, qtbot) -> None:
    _run(window, qtbot)
    window.stage_view.show_stage(REFERENCE_FULL)
    _key(qtbot, window, "\\")  # from the reference tab: to the result, with the reference left of the line
    assert window.stage_view.current() == Stage.FINAL and window.stage_view.compare.isChecked()
    canvas = window.canvas
    assert canvas.comparing() and canvas.split == 0.5
    viewport = canvas.viewport()
    line = canvas.mapFromScene(QPointF(256, 256))
    target = canvas.mapFromScene(QPointF(128, 256))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=line)
    for x in np.linspace(line.x(), target.x(), 6):
        qtbot.mouseMove(viewport, QPoint(int(x), line.y()))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=target)
    assert canvas.split == pytest.approx(0.25, abs=0.02)
    _key(qtbot, window, "\\")
    assert not window.stage_view.compare.isChecked() and not canvas.comparing()


def test_the_shortcut_list_names_every_key_and_tooltips_name_theirs(window, qtbot) -> None:
    window.canvas.setFocus()
    qtbot.keyClick(window.canvas.viewport(), Qt.Key.Key_F1)  # Help → Keyboard shortcuts
    dialog = window.shortcuts_dialog
    table = dialog.findChild(QTableWidget)
    rows = {(table.item(r, 1).text(), table.item(r, 2).text()) for r in range(table.rowCount())}
    for keys, what in (("B", "Brush"), ("E", "Eraser"), ("X", "Swap brush and eraser"), ("[", "Smaller brush"),
                       ("]", "Larger brush"), ("P", "Paint mask"), ("\\", "Before/after"), ("Ctrl+R", "Run all"),
                       ("Ctrl+Z", "Undo"), ("Esc", "Cancel"), ("F1", "Keyboard shortcuts")):
        assert (keys, what) in rows, (keys, what)
    dialog.close()
    assert "Ctrl+R" in window.panel.run_all.toolTip() and "Esc" in window.panel.cancel.toolTip()
    assert "(P)" in window.mask_editor.paint_toggle.toolTip() and "(B" in window.mask_editor.brush_button.toolTip()
    assert "\\" in window.stage_view.compare.toolTip() and "Ctrl+E" in window.history.buttons["export"].toolTip()


def test_cancel_undo_and_redo_are_enabled_only_when_they_can_act(window, qtbot) -> None:
    assert not window.act_cancel.isEnabled() and not window.act_undo.isEnabled() and not window.act_redo.isEnabled()
    enabled_while_running = []
    window.worker.started.connect(lambda *_: qtbot.wait(0) or enabled_while_running.append(True))
    window.jobs.run_progress.connect(lambda *_: enabled_while_running.append(window.act_cancel.isEnabled()))
    _run(window, qtbot)
    assert any(enabled_while_running[1:])
    qtbot.waitUntil(lambda: not window.act_cancel.isEnabled(), timeout=5000)
    window.mask_editor._whole(lambda p: p.invert())
    assert window.act_undo.isEnabled() and not window.act_redo.isEnabled()
    window.act_undo.trigger()
    assert not window.act_undo.isEnabled() and window.act_redo.isEnabled()


# ------------------------------------------------------------------------------------- canvas and mask


def test_the_overlay_shows_on_the_reference_only_and_never_covers_a_result(window, qtbot) -> None:
    overlay = window.canvas._overlay
    assert overlay.isVisible() and overlay.opacity() >= 0.6
    pixels = overlay._pixels()
    assert tuple(pixels[pixels[..., 3] > 0][0, :3]) == (0, 200, 255)  # cyan: it stands out on skin and orange
    window.mask_editor.set_overlay_colour((40, 230, 60))
    assert tuple(overlay._pixels()[overlay._pixels()[..., 3] > 0][0, :3]) == (40, 230, 60)
    _run(window, qtbot)
    assert window.stage_view.current() == Stage.FINAL and not overlay.isVisible()
    window.mask_editor.paint_toggle.setChecked(True)  # painting goes to the reference, where the mask lives
    assert window.stage_view.current() == REFERENCE_FULL and overlay.isVisible()
    window.stage_view.show_stage(Stage.FINAL)  # looking at the result: no overlay, no painting
    assert not overlay.isVisible() and not window.mask_editor.paint_toggle.isChecked()


def test_stage_2_shading_lands_on_the_shaded_tab(window, qtbot) -> None:
    _run(window, qtbot, "shading")
    assert window.stage_view.current() == Stage.SHADED
    _run(window, qtbot, "identity")
    assert window.stage_view.current() == Stage.B


# ------------------------------------------------------------------------------ projects and identities


def test_new_project_asks_a_name_and_a_location_and_nothing_old_stays_on_screen(window, qtbot, tmp_path) -> None:
    output_id = _run(window, qtbot)
    window.mask_editor._whole(lambda p: p.invert())
    assert output_id and window.act_undo.isEnabled()
    window.act_new.trigger()
    dialog = window.new_project_dialog
    create = dialog.buttons.button(dialog.buttons.StandardButton.Ok)
    assert not create.isEnabled()  # no name yet
    dialog.location.setText(str(tmp_path / "shoots"))
    dialog.name.setText("Smith: wedding 2025")
    assert dialog.target() == tmp_path / "shoots" / "Smith_ wedding 2025" and create.isEnabled()
    create.click()
    assert window.project.root == tmp_path / "shoots" / "Smith_ wedding 2025"
    assert window.project.name == "Smith: wedding 2025"
    # Nothing of the demo project: no image, no mask overlay, no stage image, nothing to undo.
    assert window.canvas.image().isNull() and not window.canvas._overlay.isVisible()
    assert window.stage_view.images == {} and window.mask_editor.painter is None
    assert not window.act_undo.isEnabled()
    assert "References" in window.canvas.hint and window.history.list.count() == 0
    assert window.identities.photos.reference_id == 0  # Check set no longer names the demo's reference
    # A folder that is already there is refused before anything is written.
    window.act_new.trigger()
    again = window.new_project_dialog
    again.location.setText(str(tmp_path / "shoots"))
    again.name.setText("Smith: wedding 2025")
    assert not again.buttons.button(again.buttons.StandardButton.Ok).isEnabled() and "exists" in again.problem.text()
    again.reject()


def test_identity_photos_dropped_seen_removed_checked_and_renamed(window, qtbot, photo_files, monkeypatch) -> None:
    dock = window.identities
    answers = iter([("Ada Lovelace", True), ("Ada King", True)])
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: next(answers))
    empty = QPoint(10, dock.list.viewport().height() - 5)  # below the demo identity: starts a new one
    _drop(dock.drops, dock.list, sorted(photo_files["identity"].iterdir()), empty)
    qtbot.waitUntil(lambda: dock.list.count() == 2 and dock.photos.list.count() == 2, timeout=20_000)
    ada = window.project.identity_by_name("Ada Lovelace")
    assert dock.current_id() == ada.id and ada.photo_count == 2
    # The new identity is in History's identity filter at once.
    assert window.history.identity_filter.findData(ada.id) >= 0
    # The strip shows each photo, with its warnings in the tooltip.
    tips = [dock.photos.list.item(r).toolTip() for r in range(2)]
    assert any("grace" in t for t in tips)
    qtbot.waitUntil(lambda: not dock.photos.list.item(0).icon().isNull(), timeout=10_000)
    dock.photos.check_set()
    qtbot.waitUntil(lambda: "⚠" in dock.photos.summary.text() or "✓" in dock.photos.summary.text(), timeout=10_000)
    assert "same photo" in dock.photos.summary.text() or "✓" in dock.photos.summary.text()
    # Remove one: the button (and the Delete key) ask first; No keeps it, Yes removes it.
    answers_to_remove = iter([QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a[2]), next(answers_to_remove))[1])
    dock.photos.list.item(0).setSelected(True)
    dock.photos.remove.click()
    assert window.project.identity(ada.id).photo_count == 2 and "Remove 1 photo" in asked[0]
    dock.photos.list.setFocus()
    qtbot.keyClick(dock.photos.list, Qt.Key.Key_Delete)
    assert len(asked) == 2
    assert window.project.identity(ada.id).photo_count == 1 and dock.photos.list.count() == 1
    # Rename (F2 / double-click / context menu).
    dock.rename_current()
    assert window.project.identity(ada.id).name == "Ada King"
    assert "Ada King" in dock.list.currentItem().text()
    assert window.history.identity_filter.itemText(window.history.identity_filter.findData(ada.id)) == "Ada King"


def test_add_photos_with_no_identity_offers_to_create_one(window, qtbot, monkeypatch, photo_files) -> None:
    dock = window.identities
    dock.list.setCurrentRow(-1)
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (asked.append(a[2]), ("Client B", True))[1])
    monkeypatch.setattr("PySide6.QtWidgets.QFileDialog.getOpenFileNames",
                        lambda *a, **k: ([str(photo_files["grace"])], ""))
    dock._on_add_clicked()
    assert "none selected" in asked[0]
    qtbot.waitUntil(lambda: window.project.identity_by_name("Client B").photo_count == 1, timeout=20_000)


# ------------------------------------------------------------------------------------------- History


def test_rating_shows_at_once_and_a_new_identity_is_in_the_filter(window, qtbot, monkeypatch) -> None:
    output_id = _run(window, qtbot)
    history = window.history
    history.list.setCurrentRow(0)
    history.rating.setValue(4)
    assert "★★★★" in history.list.item(0).text() and window.project.output(output_id).rating == 4
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Late client", True))
    window.identities.new_identity()
    new = window.project.identity_by_name("Late client")
    assert history.identity_filter.findData(new.id) >= 0


def test_grid_view_larger_thumbnails_and_two_outputs_side_by_side(window, qtbot) -> None:
    first = _run(window, qtbot)
    window.panel.light_cutoff.setValue(12.0)  # the default is 30
    second = _run(window, qtbot)
    history = window.history
    history.grid.setChecked(True)
    history.thumb_size.setValue(200)
    assert history.list.viewMode() == history.list.ViewMode.IconMode and history.list.iconSize().width() == 200
    assert history.list.item(0).text().startswith(f"#{second}")
    history.list.item(0).setSelected(True)
    history.list.item(1).setSelected(True)
    assert sorted(history.selected_ids()) == sorted([first, second])
    history.buttons["compare"].click()
    view = window.history_actions.compare_view
    qtbot.waitUntil(lambda: all(not c.image().isNull() for c in view.canvases), timeout=20_000)
    left, right = (from_qimage(c.image()) for c in view.canvases)
    assert left.shape == right.shape == (512, 512, 3) and not np.array_equal(left, right)
    view.canvases[0].set_zoom(2.0)
    assert view.canvases[1].zoom == pytest.approx(2.0)  # one zoom for both
    view.zoom_by(1.25)  # the + key
    assert view.canvases[1].zoom == pytest.approx(2.5)
    view.canvases[1].horizontalScrollBar().setValue(120)  # a pan on either side moves the other
    assert view.canvases[0].horizontalScrollBar().value() == 120
    view.close()


def test_delete_clears_the_shown_output_and_can_be_undone(window, qtbot) -> None:
    output_id = _run(window, qtbot)
    final_file = window.project.path_of(window.project.output(output_id).final_path)
    assert window.stage_view.current() == Stage.FINAL and Stage.FINAL in window.stage_view.images
    window.history.list.setCurrentRow(0)
    window.history.buttons["delete"].click()
    assert Stage.FINAL not in window.stage_view.images and window.stage_view.current() == REFERENCE_FULL
    assert window.history.list.count() == 0 and final_file.is_file()
    assert window.history.buttons["undo_delete"].isVisibleTo(window) and window.act_undo_delete.isEnabled()
    window.act_undo_delete.trigger()
    assert window.history.list.count() == 1 and window.history.current_id() in (0, output_id)
    assert not window.act_undo_delete.isEnabled()
    window.history.list.setCurrentRow(0)
    window.history.list.setFocus()
    qtbot.keyClick(window.history.list, Qt.Key.Key_Delete)  # the Delete key, in History
    assert window.history.list.count() == 0
    root = window.project.root
    window.shutdown()  # closing the project carries the deletion out
    with Project.open(root) as project:
        assert list_outputs(project).total == 0
    assert not final_file.exists()


# ------------------------------------------------------------------------------------------- export


def test_export_dialog_delivers_jpegs_without_provenance(window, qtbot, tmp_path) -> None:
    ids = [_run(window, qtbot), _run(window, qtbot)]
    for row in range(window.history.list.count()):
        window.history.list.item(row).setSelected(True)
    window.history.buttons["export"].click()
    dialog = window.history_actions.export_dialog
    assert dialog.output_ids and sorted(dialog.output_ids) == sorted(ids)
    assert dialog.preset.currentText().startswith("Client delivery") and not dialog.provenance.isChecked()
    dialog.folder.setText(str(tmp_path / "delivery"))
    dialog.long_edge.setValue(256)
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as blocker:
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    paths = blocker.args[0]
    assert len(paths) == 2 and all(p.suffix == ".jpg" and p.parent == tmp_path / "delivery" for p in paths)
    for path in paths:
        assert max(Image.open(path).size) == 256
        assert b"Grace Hopper" not in path.read_bytes() and b"megaportrait" not in path.read_bytes()
    # The archive preset, chosen in the same dialog, keeps it.
    window.history_actions.export(ids[0])
    dialog = window.history_actions.export_dialog
    dialog.preset.setCurrentIndex(dialog.preset.findText("Archive (PNG with MegaPortrait provenance)"))
    assert dialog.provenance.isChecked() and dialog.format.currentData() == "png"
    dialog.folder.setText(str(tmp_path / "archive"))
    with qtbot.waitSignal(dialog.exported, timeout=30_000) as blocker:
        dialog.buttons.button(dialog.buttons.StandardButton.Ok).click()
    assert read_embedded_provenance(blocker.args[0][0])["identity"] == "Grace Hopper (demo)"


# ------------------------------------------------------------------------------------------- reopen


def test_reopen_restores_selection_output_stage_sort_and_brush(window, qtbot, tmp_path, astronaut) -> None:
    from megaportrait_desktop.project import import_references

    Image.fromarray(astronaut[:, ::-1]).save(tmp_path / "mirrored_ref.png")
    (res,) = import_references(window.project, [tmp_path / "mirrored_ref.png"])
    window.references.refresh()
    window.references.select(res.item_id)
    qtbot.waitUntil(lambda: window.mask_editor.painter is not None and window.session.reference_id == res.item_id,
                    timeout=20_000)
    output_id = _run(window, qtbot)
    window.stage_view.show_stage(Stage.HF_MAP)
    window.history.sort.setCurrentIndex(window.history.sort.findData("score"))
    window.history.grid.setChecked(True)
    window.mask_editor.size.setValue(33)
    window.mask_editor.eraser_button.setChecked(True)
    window.mask_editor.set_overlay_colour((255, 0, 200))
    root = window.project.root
    window.close()

    again = create_window()  # the most recent project
    qtbot.addWidget(again)
    again.show()
    try:
        assert again.project.root == root
        qtbot.waitUntil(lambda: again.history_actions.shown_output == output_id, timeout=20_000)
        assert again.references.current_id() == res.item_id and again.session.reference_id == res.item_id
        assert again.history.current_id() == output_id
        assert again.stage_view.current() == Stage.HF_MAP
        assert again.history.sort.currentData() == "score" and again.history.grid.isChecked()
        editor = again.mask_editor
        assert editor.size.value() == 33 and editor.eraser_button.isChecked()
        assert again.canvas.overlay_colour == (255, 0, 200)
    finally:
        again.shutdown()


# ------------------------------------------------------------------------------------ models and hints


def test_choosing_diffusion_without_models_warns_at_once(window, qtbot) -> None:
    note = window.panel.engine_note
    assert not note.isVisibleTo(window)
    window.panel.engine.setCurrentIndex(window.panel.engine.findData("diffusion"))
    qtbot.waitUntil(lambda: note.isVisibleTo(window), timeout=10_000)
    assert "base model" in note.text() and "Model Manager" in note.text()
    window.panel.engine.setCurrentIndex(window.panel.engine.findData("classic"))
    assert not note.isVisibleTo(window)


def test_the_model_manager_says_what_to_install_where_from_and_how_big(window, qtbot, monkeypatch) -> None:
    window.act_models.trigger()
    dialog = window.model_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == len(dialog.states) > 0
                    and "What to install" in dialog.guide.text(), timeout=20_000)
    assert dialog.selected_role() == "base"  # the first missing role is selected, its guide shown
    text = dialog.guide.text()
    assert "huggingface.co/stable-diffusion-v1-5" in text and "4.3 GB" in text and "Download" in text
    assert "GB" in dialog.intro.text()
    row = next(r for r, s in enumerate(dialog.states) if s.role == "insightface")
    dialog.table.selectRow(row)
    assert "github.com/deepinsight/insightface" in dialog.guide.text()
    assert "insightface/models/buffalo_l" in dialog.guide.text()
    for row in range(dialog.table.rowCount()):  # every role has its guide
        dialog.table.selectRow(row)
        assert "What to install" in dialog.guide.text() and "Where from" in dialog.guide.text()
    # A download says its size first; No starts nothing.
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a[2]),
                                                                  QMessageBox.StandardButton.No)[1])
    dialog.table.selectRow(0)
    dialog.download_button.click()
    assert "4.3 GB" in asked[0] and dialog._cancel is None
    qtbot.waitUntil(lambda: not dialog._workers, timeout=20_000)
    dialog.close()


def test_empty_docks_and_first_start_say_what_to_do(qtbot, tmp_path) -> None:
    from megaportrait_desktop.ui.empty_hints import empty_hint

    win = create_window()  # first start: no recent project, the demo opens with the welcome
    qtbot.addWidget(win)
    win.show()
    try:
        assert win.welcome.isVisible()
        win.project_actions.create_project(tmp_path / "empty", "Empty")
        assert not win.welcome.isVisible()  # it spoke of the demo
        for view in (win.identities.list, win.references.gallery, win.history.list):
            hint = empty_hint(view)
            assert hint is not None and hint.isVisible() and hint.text()
        assert "New" in empty_hint(win.identities.list).text()
        assert "Run all" in empty_hint(win.history.list).text()
    finally:
        win.shutdown()
    again = create_window()
    qtbot.addWidget(again)
    try:
        assert getattr(again, "welcome", None) is None  # not on the second start
    finally:
        again.shutdown()


def test_landscape_and_portrait_references_get_square_thumbnails(window, qtbot, tmp_path, astronaut) -> None:
    """The ghost label: a wide reference's thumbnail replaced a square placeholder and left its old label
    painted under the new one. Every thumbnail now has the placeholder's size."""
    from megaportrait_desktop.project import import_references

    wide = np.asarray(Image.fromarray(astronaut).resize((1800, 700)))
    tall = np.asarray(Image.fromarray(astronaut).resize((600, 1500)))
    for name, image in (("wide", wide), ("tall", tall)):
        Image.fromarray(image).save(tmp_path / f"{name}.jpg")
    import_references(window.project, [tmp_path / "wide.jpg", tmp_path / "tall.jpg"])
    gallery = window.references.gallery
    window.references.refresh()
    qtbot.waitUntil(lambda: all(gallery.item(r).icon().availableSizes() and
                                gallery.item(r).icon().availableSizes()[0].width() == 112
                                for r in range(gallery.count())), timeout=20_000)
    sizes = {(s.width(), s.height()) for r in range(gallery.count()) for s in gallery.item(r).icon().availableSizes()}
    assert sizes == {(112, 112)}


def test_what_the_worker_reports_reaches_widgets_on_the_gui_thread_only(window, qtbot, monkeypatch) -> None:
    """A function connected straight to the worker's signals ran on the worker's thread and set the status
    label and the canvas from there: the app died now and then (a segfault in the gpu-worker thread)."""
    import threading

    threads: list[str] = []
    label_set, image_set = window.job_label.setText, window.canvas.set_image
    monkeypatch.setattr(window.job_label, "setText", lambda text: (threads.append(threading.current_thread().name),
                                                                   label_set(text)))
    monkeypatch.setattr(window.canvas, "set_image", lambda *a, **k: (threads.append(threading.current_thread().name),
                                                                     image_set(*a, **k)))
    _run(window, qtbot)
    assert threads and set(threads) == {threading.main_thread().name}


def test_every_list_that_takes_dropped_files_lets_them_through_its_viewport(window) -> None:
    """An item view gets drops through its viewport: the References gallery accepted them on the view only,
    so files dropped from a file manager never arrived (the drop tests hand the event to the handler)."""
    for view in (window.references.gallery, window.identities.list, window.identities.photos.list):
        assert view.viewport().acceptDrops(), view.objectName()
