"""Thumbnails made off the GUI thread (QImage is safe to build on any thread; QPixmap is not)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem

from .images import to_qimage


def load_thumbnail(path: str | Path, size: int) -> QImage:
    """A ``size``-pixel thumbnail of an image file (upright), or a null QImage if it cannot be read."""
    try:
        with Image.open(path) as im:
            im.draft("RGB", (size * 2, size * 2))  # JPEG: decode at a reduced scale
            im = ImageOps.exif_transpose(im).convert("RGB")
            im.thumbnail((size, size), Image.Resampling.LANCZOS)
            return to_qimage(np.asarray(im))
    except (OSError, ValueError, SyntaxError):
        return QImage()


def load_thumbnails(items: list[tuple[int, str]], size: int, square: bool = False) -> list[tuple[int, QImage]]:
    """Thumbnails of ``(key, path)`` items; ``square`` pads each to ``size``×``size`` (see :func:`squared`)."""
    return [(key, squared(load_thumbnail(path, size), size) if square else load_thumbnail(path, size))
            for key, path in items]


def squared(image: QImage, size: int) -> QImage:
    """``image`` centred on a transparent ``size``×``size`` square.

    An icon-mode list lays its items out for the icon it first shows; a wide or tall thumbnail that
    replaces a square placeholder then leaves the old label and icon painted beside the new ones (the
    "ghost" label under a large landscape reference). Thumbnails of one size never move anything.
    """
    if image.isNull() or (image.width() == size and image.height() == size):
        return image
    out = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    out.fill(Qt.GlobalColor.transparent)
    painter = QPainter(out)
    painter.drawImage((size - image.width()) // 2, (size - image.height()) // 2, image)
    painter.end()
    return out


def with_badge(image: QImage, text: str, colour: str = "#3d6fa8") -> QImage:
    """The thumbnail with a round badge (e.g. the face count) in its top-right corner."""
    if image.isNull():
        return image
    out = image.convertToFormat(QImage.Format.Format_ARGB32)
    painter = QPainter(out)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    d = max(18, out.width() // 6)
    rect = QRect(out.width() - d - 4, 4, d, d)
    painter.setBrush(QColor(colour))
    painter.setPen(QColor("white"))
    painter.drawEllipse(rect)
    font = QFont()
    font.setBold(True)
    font.setPixelSize(int(d * 0.6))
    painter.setFont(font)
    painter.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
    painter.end()
    return out


def set_icons(view: QListWidget, thumbs: list[tuple[int, QImage]],
              decorate: Callable[[QListWidgetItem, QImage], QImage] | None = None) -> None:
    """Give each item of ``view`` its thumbnail from ``thumbs`` (made by :func:`load_thumbnails`, keyed by the
    item's ``UserRole`` data), through ``decorate`` (a badge, say); an unreadable one keeps the placeholder."""
    images = dict(thumbs)
    for row in range(view.count()):
        item = view.item(row)
        image = images.get(item.data(Qt.ItemDataRole.UserRole))
        if image is not None and not image.isNull():
            item.setIcon(QIcon(QPixmap.fromImage(decorate(item, image) if decorate else image)))
