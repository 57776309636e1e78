"""Small widget factories shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QListWidget, QScrollArea, QWidget
from superqt import QLabeledDoubleSlider, QLabeledSlider


def double_slider(minimum: float, maximum: float, value: float, tooltip: str = "") -> QLabeledDoubleSlider:
    slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setValue(value)
    slider.setDecimals(2)
    slider.setToolTip(tooltip)
    return slider


def int_slider(minimum: int, maximum: int, value: int, tooltip: str = "") -> QLabeledSlider:
    slider = QLabeledSlider(Qt.Orientation.Horizontal)
    slider.setRange(minimum, maximum)
    slider.setValue(value)
    slider.setToolTip(tooltip)
    return slider


def current_item_id(view: QListWidget) -> int:
    """The id stored (as UserRole data) on a list's current item; 0 when nothing is selected."""
    item = view.currentItem()
    return int(item.data(Qt.ItemDataRole.UserRole)) if item else 0


def select_item_id(view: QListWidget, item_id: int) -> None:
    """Make the item carrying ``item_id`` current (no change when it is not listed)."""
    for row in range(view.count()):
        if view.item(row).data(Qt.ItemDataRole.UserRole) == item_id:
            view.setCurrentRow(row)
            return


def scroll_area(widget: QWidget) -> QScrollArea:
    """``widget`` in a frameless area that scrolls up and down only: it takes the area's width (controls
    shrink rather than a horizontal scroll bar appear)."""
    area = QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    return area
