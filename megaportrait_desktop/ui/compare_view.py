"""Two outputs side by side (Lightroom's Compare view): one zoom and pan for both (wheel, + and -, Ctrl+1
for 100 %, Ctrl+0 to fit), each with its score.

The images are decoded on a worker; zooming or panning either side moves the other to the same place.
"""

from __future__ import annotations

from PySide6.QtCore import QSignalBlocker, Qt
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QDialog, QGridLayout, QLabel, QWidget

from ..core.identity_report import VERDICT_LABELS
from ..core.imaging import load_image, to_uint8
from ..project import Output, Project
from .canvas import ImageCanvas
from .images import to_qimage
from .workers import run_in_background


def caption(out: Output) -> str:
    score = "score n/a" if out.identity_score is None else f"score {out.identity_score:.3f}"
    stars = "★" * out.rating or "unrated"
    return (f"#{out.id} {out.identity_name or '—'} → {out.reference_name or '—'} · "
            f"{VERDICT_LABELS.get(out.verdict, 'no identity report')} · {score} · {stars}")


def _final_image(project: Project, output_id: int):
    return to_qimage(to_uint8(load_image(project.path_of(project.output(output_id).final_path)).pixels))


class CompareView(QDialog):
    """``left`` and ``right`` outputs of ``project`` side by side."""

    def __init__(self, project: Project, left: int, right: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("compareView")
        self.setWindowTitle(f"Compare #{left} and #{right}")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.output_ids = (left, right)
        self.canvases = (ImageCanvas(), ImageCanvas())
        layout = QGridLayout(self)
        self.captions = []
        for column, (output_id, canvas) in enumerate(zip(self.output_ids, self.canvases, strict=True)):
            canvas.hint = "Loading…"
            label = QLabel(caption(project.output(output_id)))
            label.setWordWrap(True)
            self.captions.append(label)
            layout.addWidget(label, 0, column)
            layout.addWidget(canvas, 1, column)
        layout.setRowStretch(1, 1)
        for a, b in ((0, 1), (1, 0)):
            self._follow(self.canvases[a], self.canvases[b])
        self._workers = [run_in_background(_final_image, project, output_id,
                                           on_done=lambda image, c=canvas: c.set_image(image, fit=True))
                         for output_id, canvas in zip(self.output_ids, self.canvases, strict=True)]
        left_canvas = self.canvases[0]
        for keys, slot in (("Ctrl+1", left_canvas.actual_size), ("Ctrl+0", self.fit), ("+", lambda: self.zoom_by(1.25)),
                           ("=", lambda: self.zoom_by(1.25)), ("-", lambda: self.zoom_by(0.8))):
            QShortcut(QKeySequence(keys), self, slot)
        self.setToolTip("Wheel, + and -: zoom both; drag: pan both; Ctrl+1: 100 %; Ctrl+0: fit")
        self.resize(1200, 720)

    def zoom_by(self, factor: float) -> None:
        """Zoom both sides (the other follows the left one)."""
        self.canvases[0].set_zoom(self.canvases[0].zoom * factor)

    def fit(self) -> None:
        for canvas in self.canvases:
            canvas.fit()

    @staticmethod
    def _follow(source: ImageCanvas, target: ImageCanvas) -> None:
        """``target`` shows the same zoom and the same part of the image as ``source``."""

        def zoomed(zoom: float) -> None:
            if abs(target.zoom - zoom) > 1e-6:
                with QSignalBlocker(target):
                    target.setTransform(source.transform())

        def scrolled(*_) -> None:
            for mine, theirs in ((source.horizontalScrollBar(), target.horizontalScrollBar()),
                                 (source.verticalScrollBar(), target.verticalScrollBar())):
                if theirs.value() != mine.value():
                    with QSignalBlocker(theirs):
                        theirs.setValue(mine.value())
            target.viewport().update()
        source.zoom_changed.connect(zoomed)
        source.horizontalScrollBar().valueChanged.connect(scrolled)
        source.verticalScrollBar().valueChanged.connect(scrolled)
