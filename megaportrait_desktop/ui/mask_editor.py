"""Mask tools: brush and eraser with size, hardness and opacity; feather, reset, invert, overlay.

The widget owns no pixels: it drives a :class:`core.brush.MaskPainter` and asks the canvas to
repaint only what a dab changed.
"""

from __future__ import annotations

import numpy as np
import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from ..core.brush import Brush, MaskPainter
from .canvas import OVERLAY_COLOUR, ImageCanvas
from .widgets import double_slider, int_slider, scroll_area

#: The overlay's opacity by default: strong enough to see the mask's edge on skin at a glance.
OVERLAY_OPACITY = 0.6
#: Overlay colours to choose from (the first is the default).
OVERLAY_COLOURS = {"Cyan": OVERLAY_COLOUR, "Green": (40, 230, 60), "Magenta": (255, 0, 200), "Red": (255, 30, 30),
                   "Yellow": (255, 235, 0), "Blue": (40, 80, 255)}


class MaskEditor(QWidget):
    """Tool panel + controller for editing a reference's mask on the canvas."""

    mask_changed = Signal()  # after a stroke or an action (undo/redo included)
    save_requested = Signal()

    def __init__(self, canvas: ImageCanvas, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas
        self.painter: MaskPainter | None = None
        self.dirty = False
        #: Counts every change, so a save that finishes later knows whether the mask changed meanwhile.
        self.edits = 0

        self.paint_toggle = _tool("Paint mask", "mdi6.draw", "Paint the mask on the reference (P)")
        self.brush_button = _tool("Brush", "mdi6.brush", "Brush: adds to the mask (B; X swaps brush and eraser)")
        self.brush_button.setChecked(True)
        self.eraser_button = _tool("Eraser", "mdi6.eraser", "Eraser: removes from the mask (E; X swaps)")
        tools = QButtonGroup(self)
        tools.addButton(self.brush_button)
        tools.addButton(self.eraser_button)
        self.size = int_slider(1, 800, 80, "Brush diameter in image pixels ([ smaller, ] larger)")
        self.hardness = double_slider(0.0, 1.0, 0.6, "1 = hard edge, 0 = soft")
        self.opacity = double_slider(0.05, 1.0, 1.0, "How much one stroke adds")
        self.feather_amount = int_slider(1, 100, 8, "Feather radius for the Feather button")
        self.overlay_opacity = double_slider(0.0, 1.0, OVERLAY_OPACITY, "How strongly the mask is shown")
        self.overlay_colour = QComboBox()
        self.overlay_colour.setToolTip("The mask's colour on the reference: pick one that stands out from the skin "
                                       "and the clothes")
        for name, rgb in OVERLAY_COLOURS.items():
            self.overlay_colour.addItem(_swatch(rgb), name, rgb)
        self.overlay_colour.addItem("Custom…", None)
        self.show_overlay = QCheckBox("Show mask")
        self.show_overlay.setChecked(True)
        self.undo_button = QPushButton(qta.icon("mdi6.undo"), "Undo")
        self.undo_button.setToolTip("Undo the last stroke (Ctrl+Z)")
        self.redo_button = QPushButton(qta.icon("mdi6.redo"), "Redo")
        self.redo_button.setToolTip("Redo (Ctrl+Shift+Z)")
        feather = QPushButton(qta.icon("mdi6.blur"), "Feather")
        reset = QPushButton(qta.icon("mdi6.restore"), "Reset to auto")
        invert = QPushButton(qta.icon("mdi6.invert-colors"), "Invert")
        save = QPushButton(qta.icon("mdi6.content-save"), "Save mask")

        self.save_button = save
        row = QHBoxLayout()
        for w in (self.paint_toggle, self.brush_button, self.eraser_button):
            row.addWidget(w)
        history = QHBoxLayout()
        for w in (self.undo_button, self.redo_button, save):
            history.addWidget(w)
        form = QFormLayout()
        form.addRow("Size (px)", self.size)
        form.addRow("Hardness", self.hardness)
        form.addRow("Opacity", self.opacity)
        form.addRow("Feather (px)", self.feather_amount)
        form.addRow("Overlay", self.overlay_opacity)
        form.addRow("Colour", self.overlay_colour)
        actions = QHBoxLayout()
        for w in (feather, reset, invert):
            actions.addWidget(w)
        options = QWidget()
        options_layout = QVBoxLayout(options)
        options_layout.setContentsMargins(0, 0, 0, 0)
        options_layout.addLayout(form)
        options_layout.addWidget(self.show_overlay)
        options_layout.addLayout(actions)
        options_layout.addStretch(1)
        # Tools and Undo/Redo/Save stay in view; the brush settings scroll on a small screen.
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addLayout(history)
        layout.addWidget(scroll_area(options), 1)

        self.paint_toggle.toggled.connect(self._on_paint_toggled)
        self.overlay_opacity.valueChanged.connect(self.canvas.set_overlay_opacity)
        self.show_overlay.toggled.connect(self.canvas.set_overlay_visible)
        self.overlay_colour.activated.connect(self._on_overlay_colour_activated)
        self.undo_button.clicked.connect(self.undo)
        self.redo_button.clicked.connect(self.redo)
        feather.clicked.connect(lambda: self._whole(lambda p: p.feather(self.feather_amount.value())))
        reset.clicked.connect(lambda: self._whole(MaskPainter.reset))
        invert.clicked.connect(lambda: self._whole(MaskPainter.invert))
        save.clicked.connect(self.save_requested)
        canvas.stroke_started.connect(self._on_canvas_stroke_started)
        canvas.stroke_moved.connect(self._on_canvas_stroke_moved)
        canvas.stroke_finished.connect(self._on_canvas_stroke_finished)
        self.canvas.set_overlay_opacity(self.overlay_opacity.value())
        self._update_buttons()

    # ------------------------------------------------------------------ API

    def load(self, mask: np.ndarray, auto_mask: np.ndarray) -> None:
        self.load_painter(MaskPainter(mask, auto_mask))

    def load_painter(self, painter: MaskPainter, overlay: QImage | None = None) -> None:
        """Edit ``painter``'s mask; ``overlay`` is its canvas overlay, made off the GUI thread for a big mask."""
        self.painter = painter
        self.dirty = False
        self.edits += 1
        self.canvas.set_mask(self.painter.mask, overlay=overlay)
        self.canvas.set_overlay_visible(self.show_overlay.isChecked())
        self._update_buttons()

    def clear(self) -> None:
        self.painter = None
        self.canvas.set_mask(None)
        self._update_buttons()

    def brush(self) -> Brush:
        return Brush(size=float(self.size.value()), hardness=float(self.hardness.value()),
                     opacity=float(self.opacity.value()), erase=self.eraser_button.isChecked())

    def swap_tool(self) -> None:
        """Brush ↔ eraser (the X key)."""
        (self.eraser_button if self.brush_button.isChecked() else self.brush_button).setChecked(True)

    def grow_brush(self, factor: float) -> None:
        """The ] and [ keys: the brush 25 % larger or smaller (at least one pixel either way)."""
        size = self.size.value()
        step = max(1, round(size * (factor - 1))) if factor > 1 else -max(1, round(size * (1 - factor)))
        self.size.setValue(min(self.size.maximum(), max(self.size.minimum(), size + step)))

    def set_overlay_colour(self, rgb: tuple[int, int, int]) -> None:
        """Show the mask in ``rgb`` (kept across sessions by the window's view state)."""
        rgb = tuple(int(c) for c in rgb)
        index = next((i for i in range(self.overlay_colour.count()) if self.overlay_colour.itemData(i) == rgb), -1)
        if index < 0:
            self.overlay_colour.insertItem(self.overlay_colour.count() - 1, _swatch(rgb), "Custom", rgb)
            index = self.overlay_colour.count() - 2
        self.overlay_colour.setCurrentIndex(index)
        self.canvas.set_overlay_colour(rgb)

    def undo(self) -> None:
        if self.painter and self.painter.undo():
            self._changed()

    def redo(self) -> None:
        if self.painter and self.painter.redo():
            self._changed()

    # ------------------------------------------------------------------ slots

    def _on_paint_toggled(self, on: bool) -> None:
        self.canvas.set_painting(on)

    def _on_overlay_colour_activated(self, index: int) -> None:
        rgb = self.overlay_colour.itemData(index)
        if rgb is None:  # Custom…
            colour = QColorDialog.getColor(QColor(*self.canvas.overlay_colour), self, "Mask colour")
            if not colour.isValid():
                self.set_overlay_colour(self.canvas.overlay_colour)
                return
            rgb = (colour.red(), colour.green(), colour.blue())
        self.set_overlay_colour(rgb)

    def _on_canvas_stroke_started(self, x: float, y: float) -> None:
        if self.painter is not None:
            self.painter.begin_stroke(x, y, self.brush())
            self._repaint()

    def _on_canvas_stroke_moved(self, x: float, y: float) -> None:
        if self.painter is not None:
            self.painter.stroke_to(x, y)
            self._repaint()

    def _on_canvas_stroke_finished(self) -> None:
        if self.painter is not None:
            self.painter.end_stroke()
            self._changed()

    def _whole(self, action) -> None:
        if self.painter is not None:
            action(self.painter)
            self._changed()

    def _changed(self) -> None:
        self.dirty = True
        self.edits += 1
        self._repaint()
        self._update_buttons()
        self.mask_changed.emit()

    def _repaint(self) -> None:
        rect = self.painter.take_dirty() if self.painter else None
        if rect is not None:
            self.canvas.update_mask(self.painter.mask, rect)

    def _update_buttons(self) -> None:
        self.undo_button.setEnabled(bool(self.painter and self.painter.can_undo))
        self.redo_button.setEnabled(bool(self.painter and self.painter.can_redo))


def _tool(text: str, icon: str, tooltip: str) -> QToolButton:
    button = QToolButton()
    button.setText(text)
    button.setToolTip(tooltip)
    button.setIcon(qta.icon(icon))
    button.setCheckable(True)
    button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
    return button


def _swatch(rgb: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(*rgb))
    return QIcon(pixmap)
