"""numpy ↔ Qt image conversion (copies, so a QImage never points into a freed array)."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

from ..core.imaging import to_uint8


def to_qimage(array: np.ndarray) -> QImage:
    """An RGB(A) or grey array (uint8/uint16/float [0, 1]) as a QImage that owns its pixels.

    The pixels are copied into the new image by numpy, which lets other threads run meanwhile
    (``QImage.copy`` holds the GIL: 90 ms on 40 megapixels, a stall of the window when a worker
    converts a full-size image).
    """
    data = to_uint8(np.asarray(array))
    h, w = data.shape[:2]
    channels = 1 if data.ndim == 2 else data.shape[2]
    fmt = {1: QImage.Format.Format_Grayscale8, 3: QImage.Format.Format_RGB888,
           4: QImage.Format.Format_RGBA8888}[channels]
    image = QImage(w, h, fmt)
    rows = np.frombuffer(image.bits(), np.uint8, count=image.sizeInBytes()).reshape(h, image.bytesPerLine())
    rows[:, :w * channels] = data.reshape(h, w * channels)
    return image


def from_qimage(image: QImage) -> np.ndarray:
    """A QImage as an RGB uint8 array."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buffer = np.frombuffer(image.constBits(), np.uint8, count=image.sizeInBytes())
    return buffer.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()
