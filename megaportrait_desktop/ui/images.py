"""numpy ↔ Qt image conversion (copies, so a QImage never points into a freed array)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from ..core.imaging import to_uint8


def to_qimage(array: np.ndarray) -> QImage:
    """An RGB(A) or grey array (uint8/uint16/float [0, 1]) as a QImage that owns its pixels."""
    data = np.ascontiguousarray(to_uint8(np.asarray(array)))
    h, w = data.shape[:2]
    if data.ndim == 2:
        return QImage(data.data, w, h, data.strides[0], QImage.Format.Format_Grayscale8).copy()
    if data.shape[2] == 4:
        return QImage(data.data, w, h, data.strides[0], QImage.Format.Format_RGBA8888).copy()
    return QImage(data.data, w, h, data.strides[0], QImage.Format.Format_RGB888).copy()


def from_qimage(image: QImage) -> np.ndarray:
    """A QImage as an RGB uint8 array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    return buffer.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()
