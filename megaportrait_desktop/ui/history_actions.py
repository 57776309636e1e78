"""What the History dock's buttons do to the window: show an output, recall, compare, export, delete."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QProgressBar

from ..core.errors import MegaPortraitError
from ..core.imaging import load_image, to_uint8
from ..core.stages import Stage
from ..project import Project
from ..project.history import stage_pixels
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


class _Progress(QObject):
    """Carries a worker's progress reports to the GUI thread (a signal emitted from any thread is queued)."""

    reported = Signal(float, str)


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
        dock.export_requested.connect(self.export)
        dock.delete_requested.connect(self.delete)
        dock.rerun_final_requested.connect(self.rerun_final)
        self.export_bar = QProgressBar()
        self.export_bar.setRange(0, 100)
        self.export_bar.setMaximumWidth(160)
        self.export_bar.setTextVisible(False)
        self.export_bar.hide()
        window.statusBar().addPermanentWidget(self.export_bar)

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

    def export(self, output_id: int | None = None) -> None:
        w = self.window
        output_id = output_id or w.history.current_id() or w.last_output_id
        if not output_id or w.project is None:
            show_error(w, "Export", "Choose an output in History first.")
            return
        path, _ = QFileDialog.getSaveFileName(w, "Export output", f"portrait_{output_id}.jpg",
                                              "JPEG (*.jpg);;PNG (*.png);;16-bit TIFF (*.tif)")
        if not path:
            return
        from ..project.exchange import export_output

        progress = _Progress(self)
        progress.reported.connect(lambda fraction, what: self._show_export(output_id, fraction, what))
        self._show_export(output_id, 0.0, "Starting")

        def done(out) -> None:
            self._end_export(progress)
            w.statusBar().showMessage(f"Exported {out}", 5000)

        def failed(exc: Exception) -> None:
            self._end_export(progress)
            show_error(w, "Export", str(exc))
        # Reading, encoding and writing a 24-megapixel file run on a worker; the window shows how far it is.
        w.track(run_in_background(export_output, w.project, output_id, path, on_done=done, on_error=failed,
                                  on_progress=progress.reported.emit))

    def _show_export(self, output_id: int, fraction: float, what: str) -> None:
        self.export_bar.setValue(round(fraction * 100))
        self.export_bar.show()
        self.window.job_label.setText(f"Exporting #{output_id}: {what}…")

    def _end_export(self, progress: QObject) -> None:
        progress.deleteLater()
        self.export_bar.hide()
        self.window.job_label.setText("Idle")

    def delete(self, output_id: int) -> None:
        w = self.window
        answer = QMessageBox.question(w, "Delete output", f"Delete output #{output_id} and its images?")
        if answer != QMessageBox.StandardButton.Yes:
            return
        w.project.delete_output(output_id)
        if output_id in (self.shown_output, w.last_output_id):  # its image must not stay on screen
            self.shown_output = 0
            w.show_reference_only()
        w.history.refresh()
