"""What the History dock's buttons do to the window: show an output, recall, compare (before/after, or two
side by side), export with a preset, delete (undoable: see :mod:`project.trash`)."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QImage

from ..core.errors import MegaPortraitError
from ..core.imaging import load_image, to_uint8
from ..core.stages import Stage
from ..project import Project, ProjectError
from ..project.history import stage_pixels
from ..project.trash import OutputTrash
from .errors import show_error
from .images import to_qimage
from .workers import run_in_background


def output_images(project: Project, output_id: int) -> dict[str, np.ndarray | QImage]:
    """An output's final and stage images, decoded and made QImages here, off the GUI thread.

    The full-resolution ``pasted`` stage is stored as the crop where it differs from the final: it is
    laid over the final here.
    """
    out = project.output(output_id)
    final = to_uint8(load_image(project.path_of(out.final_path)).pixels)
    images: dict[str, np.ndarray | QImage] = {Stage.FINAL: to_qimage(final)}
    for name, path in out.stages.items():
        pixels = load_image(project.path_of(path)).pixels
        if name == Stage.MASK:
            images[name] = pixels[..., 0]
        elif name == Stage.PASTED:
            images[name] = to_qimage(stage_pixels(to_uint8(pixels), out.stage_offsets.get(name, (0, 0)), final))
        else:
            images[name] = to_qimage(pixels)
    return images


class HistoryActions(QObject):
    """Wires the History dock to the window (``window``: a :class:`.main_window.MainWindow`)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.shown_output = 0  # the output whose images the canvas shows
        dock = window.history
        dock.output_selected.connect(self.show)
        dock.recall_requested.connect(self.recall)
        dock.compare_requested.connect(self.compare)
        dock.compare_pair_requested.connect(self.compare_pair)
        dock.export_requested.connect(self.export)
        dock.delete_requested.connect(self.delete)
        dock.undo_delete_requested.connect(self.undo_delete)
        dock.rerun_final_requested.connect(self.rerun_final)
        self.trash: OutputTrash | None = None
        self.export_dialog = None
        self.compare_view = None
        # Deletions whose undo window has passed are carried out while the app runs (and all on close).
        self._purge = QTimer(self)
        self._purge.setInterval(60_000)
        self._purge.timeout.connect(self.purge)
        self._purge.start()

    def set_project(self, project: Project | None) -> None:
        """Carry out the closing project's pending deletions; start an empty trash for the new one."""
        if self.trash is not None:
            self.trash.empty()
        self.trash = OutputTrash(project) if project is not None else None
        self._show_trash()

    def show(self, output_id: int, then=None) -> None:
        w = self.window

        def shown(images: dict) -> None:
            if w.project is None:
                return
            self.shown_output = output_id
            w.stage_view.update_images(images, show=Stage.FINAL)
            if then:
                then()

        w.track(run_in_background(output_images, w.project, output_id, on_done=shown,
                                  on_error=lambda exc: show_error(w, "History", str(exc))))

    def recall(self, output_id: int) -> None:
        """The output's whole request becomes the session's: settings, models, LoRA and mask version."""
        w = self.window
        try:
            notes = w.session.recall(w.project.output(output_id))
        except MegaPortraitError as exc:
            show_error(w, "Recall settings", str(exc))
            return
        w.identities.select(w.session.identity_id)
        w.references.select(w.session.reference_id)
        w.load_mask()
        if notes:
            show_error(w, "Recall settings", "\n".join(notes))
        w.statusBar().showMessage(f"Settings of output #{output_id} recalled (models, LoRA and mask included).",
                                  6000)

    def rerun_final(self, output_id: int) -> int:
        """A draft (or any output) again at Final quality: its whole request, recalled, is run and recorded anew."""
        self.recall(output_id)
        self.window.session.set("diffusion.quality", "final")
        return self.window.run_pipeline("all")

    def compare(self, output_id: int) -> None:
        self.show(output_id, then=lambda: self.window.stage_view.compare.setChecked(True))

    def compare_pair(self, left: int, right: int) -> None:
        """Two outputs side by side, one zoom for both."""
        from .compare_view import CompareView

        w = self.window
        self.compare_view = CompareView(w.project, left, right, w)
        self.compare_view.show()
        self.compare_view.activateWindow()  # its keys (+, -, Ctrl+1, Ctrl+0) work at once

    def export(self, output_id: int | None = None) -> None:
        """The Export dialog (presets, metadata) for the selected outputs (or the one given, or the last run)."""
        from .export_dialog import ExportDialog
        from .recent import settings

        w = self.window
        ids = w.history.selected_ids() if output_id is None or output_id in w.history.selected_ids() else [output_id]
        ids = ids or ([w.last_output_id] if w.last_output_id else [])
        if not ids or w.project is None:
            show_error(w, "Export", "Choose an output in History first.")
            return
        self.export_dialog = ExportDialog(w.project, ids, settings(), w)
        self.export_dialog.exported.connect(
            lambda paths: w.statusBar().showMessage(f"Exported {len(paths)} file(s) to {paths[0].parent}"
                                                    if paths else "Nothing exported.", 8000))
        self.export_dialog.show()

    def delete(self, output_id: int | None = None) -> None:
        """Delete the selected outputs at once; Undo delete brings them back until the window passes or the
        project closes (their rows and files stay until then)."""
        w = self.window
        ids = w.history.selected_ids() if output_id is None or output_id in w.history.selected_ids() else [output_id]
        if not ids or self.trash is None:
            return
        try:
            deletion = self.trash.delete(ids)
        except ProjectError as exc:
            show_error(w, "Delete output", str(exc))
            return
        if {self.shown_output, w.last_output_id} & set(deletion.output_ids):  # its image must not stay on screen
            self.shown_output = 0
            w.show_reference_only()
        self._show_trash()
        w.history.refresh()
        w.statusBar().showMessage(f"Deleted {', '.join(f'#{i}' for i in deletion.output_ids)}. Undo delete "
                                  f"({w.act_undo_delete.shortcut().toString()}) brings them back.", 10_000)

    def undo_delete(self) -> None:
        w = self.window
        deletion = self.trash.undo() if self.trash is not None else None
        if deletion is None:
            return
        self._show_trash()
        w.history.refresh()
        w.statusBar().showMessage(f"Restored {', '.join(f'#{i}' for i in deletion.output_ids)}.", 6000)

    def purge(self) -> None:
        if self.trash is not None and self.trash.purge():
            self._show_trash()

    def _show_trash(self) -> None:
        """History hides the pending deletions; Undo delete is offered while there are any."""
        w = self.window
        w.history.hidden_ids = self.trash.hidden if self.trash is not None else ()
        pending = bool(self.trash and self.trash.pending)
        button = w.history.buttons["undo_delete"]
        button.setVisible(pending)
        if pending:
            button.setText(f"Undo delete ({', '.join(f'#{i}' for i in self.trash.pending[-1].output_ids[:3])}"
                           f"{'…' if len(self.trash.pending[-1].output_ids) > 3 else ''})")
        if hasattr(w, "act_undo_delete"):
            w.act_undo_delete.setEnabled(pending)
