"""The main window's actions, menus and toolbar (shortcuts in one place, named in each tooltip)."""

from __future__ import annotations

from collections.abc import Callable

import qtawesome as qta
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMessageBox

from .compute_dialog import open_compute_dialog


def action(window: QMainWindow, text: str, icon: str | None, slot: Callable, shortcut=None) -> QAction:
    act = QAction(qta.icon(icon) if icon else qta.icon("mdi6.circle-small"), text, window)
    if shortcut is not None:
        act.setShortcut(shortcut)
        keys = act.shortcut().toString(QKeySequence.SequenceFormat.NativeText)
        act.setToolTip(f"{text.replace('&', '').rstrip('…')} ({keys})")
    act.triggered.connect(slot)
    return act


def build_actions(w) -> None:
    """Create ``w.act_*``, the menu bar (with ``w.recent_menu``) and the toolbar of a :class:`MainWindow`."""
    from .shortcuts import build_tool_actions  # it builds on ``action`` here

    w.act_new = action(w, "&New Project…", "mdi6.folder-plus", w.project_actions.new_project,
                       QKeySequence.StandardKey.New)
    projects = w.project_actions
    w.act_open = action(w, "&Open Project…", "mdi6.folder-open", projects.open_project_dialog,
                        QKeySequence.StandardKey.Open)
    w.act_export = action(w, "&Export Output…", "mdi6.export", lambda: w.history_actions.export(), "Ctrl+E")
    w.act_quit = action(w, "&Quit", "mdi6.exit-to-app", w.close, QKeySequence.StandardKey.Quit)
    w.act_undo = action(w, "&Undo", "mdi6.undo", w.mask_editor.undo, QKeySequence.StandardKey.Undo)
    w.act_redo = action(w, "&Redo", "mdi6.redo", w.mask_editor.redo, "Ctrl+Shift+Z")
    w.act_fit = action(w, "&Fit", "mdi6.fit-to-screen", w.canvas.fit, "Ctrl+0")
    w.act_100 = action(w, "&100 %", "mdi6.magnify", w.canvas.actual_size, "Ctrl+1")
    w.act_run = action(w, "Run &all", "mdi6.play", lambda: w.run_pipeline("all"), "Ctrl+R")
    w.act_cancel = action(w, "&Cancel", "mdi6.stop", w.cancel_job, "Esc")
    w.act_batch = action(w, "New &batch…", "mdi6.playlist-plus", lambda: w.batch_actions.new_batch(), "Ctrl+B")
    w.act_reset = action(w, "Reset all settings", "mdi6.restore", lambda: w.session.reset())
    w.act_current_models = action(w, "Use current models", "mdi6.cube-scan", lambda: w.session.use_current_models())
    w.act_current_models.setToolTip("After Recall: run with today's models and the identity's newest LoRA instead "
                                    "of the ones the recalled output was made with")
    w.act_models = action(w, "&Model Manager…", "mdi6.cube-outline", w.show_model_settings)
    w.act_compute = action(w, "&Compute…", "mdi6.server-network", lambda: open_compute_dialog(w))
    w.act_compute.setToolTip("Where batches run: this computer, or the studio's Ray cluster")
    w.act_about = action(w, "&About MegaPortrait", "mdi6.information-outline", lambda: show_about(w))
    w.act_undo_delete = action(w, "Undo &delete output", "mdi6.delete-restore",
                               lambda: w.history_actions.undo_delete(), "Ctrl+Alt+Z")
    w.act_undo_delete.setEnabled(False)
    build_tool_actions(w)

    menu = w.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addActions([w.act_new, w.act_open])
    w.recent_menu = file_menu.addMenu("Open &Recent")
    file_menu.addSeparator()
    file_menu.addAction(w.act_export)
    file_menu.addSeparator()
    file_menu.addAction(w.act_quit)
    edit = menu.addMenu("&Edit")
    edit.addActions([w.act_undo, w.act_redo, w.act_undo_delete])
    edit.addSeparator()
    edit.addActions([w.act_reset, w.act_current_models])
    view = menu.addMenu("&View")
    view.addActions([w.act_fit, w.act_100, w.act_compare])
    view.addSeparator()
    for dock in (w.identities, w.references, w.history, w.batch_actions.dock, w.pipeline_dock, w.mask_dock):
        view.addAction(dock.toggleViewAction())
    tools = menu.addMenu("&Tools")
    tools.addActions([w.act_paint, w.act_brush, w.act_eraser, w.act_swap, w.act_smaller, w.act_larger])
    run = menu.addMenu("&Run")
    run.addActions([w.act_run, w.act_cancel, w.act_batch])
    models = menu.addMenu("&Models")
    models.addAction(w.act_models)
    settings_menu = menu.addMenu("&Settings")
    settings_menu.addAction(w.act_compute)
    help_menu = menu.addMenu("&Help")
    help_menu.addActions([w.act_shortcuts, w.act_about])

    toolbar = w.addToolBar("Main")
    toolbar.setObjectName("mainToolbar")
    toolbar.addActions([w.act_new, w.act_open, w.act_export])
    toolbar.addSeparator()
    toolbar.addActions([w.act_undo, w.act_redo])
    toolbar.addSeparator()
    toolbar.addActions([w.act_fit, w.act_100])
    toolbar.addSeparator()
    toolbar.addActions([w.act_run, w.act_cancel])


def show_about(window: QMainWindow) -> None:
    from .. import __version__

    QMessageBox.about(window, "About MegaPortrait Desktop",
                      f"<b>MegaPortrait Desktop {__version__}</b><p>Puts a client's face into a reference "
                      "portrait, offline: identity kept, shading kept, no seam.</p>")
