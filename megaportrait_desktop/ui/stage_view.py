"""The centre of the window: the stage switcher, the before/after split and the canvas showing a stage."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QCheckBox, QTabBar, QVBoxLayout, QWidget
from superqt import QFlowLayout

from ..core.stages import Stage
from .canvas import ImageCanvas
from .images import to_qimage

#: The full-resolution reference (what the mask is painted on); not a stage of a run.
REFERENCE_FULL = "full_reference"
#: The stage switcher: label and the image it shows.
STAGE_TABS = (("Reference", REFERENCE_FULL), ("A", Stage.A), ("B", Stage.B), ("Light map", Stage.LIGHT_MAP),
              ("HF-map", Stage.HF_MAP), ("Shaded", Stage.SHADED), ("Pasted", Stage.PASTED), ("Final", Stage.FINAL))
#: Stages at the reference's full size (where the mask and the before/after split make sense).
FULL_SIZE = {REFERENCE_FULL, Stage.PASTED, Stage.FINAL}
#: Stages shown beside the reference by the before/after split.
COMPARABLE = {Stage.PASTED, Stage.FINAL}


class StageView(QWidget):
    """Shows one of the current images on the canvas; the window fills :attr:`images`.

    Full-size images arrive as QImages made off the GUI thread (converting 24 megapixels here would
    stall the window); crop-size stages may be arrays.
    """

    stage_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images: dict[str, np.ndarray | QImage] = {}
        self.canvas = ImageCanvas()
        self.tabs = QTabBar()
        for label, _ in STAGE_TABS:
            self.tabs.addTab(label)
        self.compare = QCheckBox("Before/after")
        self.compare.setToolTip("The reference left of a line, the result right of it (\\); drag the line on the "
                                "image to move it")
        # Every tab stays in view: where the row is too narrow (1280×720) the before/after box moves to a
        # second row instead of the tabs scrolling.
        top = QFlowLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.tabs)
        top.addWidget(self.compare)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        self.tabs.currentChanged.connect(self._on_tabs_current_changed)
        self.compare.toggled.connect(self._on_compare_toggled)

    def current(self) -> str:
        return STAGE_TABS[self.tabs.currentIndex()][1]

    def show_stage(self, key: str) -> None:
        """Switch to ``key``'s tab (and show it)."""
        for index, (_, stage) in enumerate(STAGE_TABS):
            if stage == key:
                if index == self.tabs.currentIndex():
                    self.refresh()
                self.tabs.setCurrentIndex(index)
                return

    def clear(self, reference: np.ndarray | QImage | None = None) -> None:
        """Forget every image (another reference, another project); keep only ``reference``."""
        self.images = {} if reference is None else {REFERENCE_FULL: reference}
        self.refresh()

    def update_images(self, images: dict[str, np.ndarray | QImage], show: str | None = None) -> None:
        self.images.update(images)
        if show is not None:
            self.show_stage(show)
        elif self.current() in images:
            self.refresh()

    def refresh(self) -> None:
        key = self.current()
        image = self.images.get(key)
        if image is None:
            image = self.images.get(REFERENCE_FULL)
        if image is None:
            self.canvas.clear()
            return
        self.canvas.set_image(_qimage(image))
        self._on_compare_toggled(self.compare.isChecked())

    def _on_tabs_current_changed(self, index: int) -> None:
        self.refresh()
        self.stage_changed.emit(self.current())

    def toggle_compare(self) -> None:
        """Before/after on or off (the \\ key); from a tab without a result, to the newest result there is."""
        if not self.compare.isChecked() and self.current() not in COMPARABLE:
            for stage in (Stage.FINAL, Stage.PASTED):
                if stage in self.images:
                    self.show_stage(stage)
                    break
        self.compare.toggle()

    def _on_compare_toggled(self, on: bool) -> None:
        before = self.images.get(REFERENCE_FULL)
        if on and before is not None and self.current() in COMPARABLE and self.current() in self.images:
            self.canvas.set_before(_qimage(before))
        else:
            self.canvas.set_before(None)


def _qimage(image: np.ndarray | QImage) -> QImage:
    return image if isinstance(image, QImage) else to_qimage(image)
