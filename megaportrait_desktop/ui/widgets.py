"""Small widget factories shared by the panels."""

from __future__ import annotations

from PySide6.QtCore import Qt
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
