"""The image canvas: zoom (wheel, fit, 100 %), pan, a before/after split and the mask overlay.

The canvas only shows images and forwards mouse strokes (in image pixels) as signals; the mask
itself is painted by core code (:mod:`core.brush`).
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen, QWheelEvent
from PySide6.QtWidgets import QGraphicsItem, QGraphicsScene, QGraphicsView, QStyleOptionGraphicsItem, QWidget

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0
#: The mask overlay's colour by default: cyan reads on skin, orange suits and red lips alike (pink did not).
OVERLAY_COLOUR = (0, 200, 255)
#: How near (screen pixels) the pointer must be to the before/after line to drag it.
SPLIT_GRAB_PX = 8


class _ImageItem(QGraphicsItem):
    """Paints a QImage directly (only the exposed part), with an optional 'before' image left of a split."""

    def __init__(self) -> None:
        super().__init__()
        self.image = QImage()
        self.before: QImage | None = None
        self.split = 0.5
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:  # noqa: N802 - Qt API
        return QRectF(0, 0, self.image.width(), self.image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if self.image.isNull():
            return
        exposed = option.exposedRect.intersected(self.boundingRect())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, painter.transform().m11() < 1.0)
        painter.drawImage(exposed, self.image, exposed)
        if self.before is not None and self.before.size() == self.image.size():
            split_x = self.split * self.image.width()
            left = exposed.intersected(QRectF(0, 0, split_x, self.image.height()))
            if not left.isEmpty():
                painter.drawImage(left, self.before, left)
            pen = QPen(QColor(255, 255, 255, 200))
            pen.setCosmetic(True)
            pen.setWidth(2)
            painter.setPen(pen)
            painter.drawLine(QPointF(split_x, 0), QPointF(split_x, self.image.height()))


class _OverlayItem(QGraphicsItem):
    """The mask as a translucent colour; updated in place from the mask array, region by region."""

    def __init__(self) -> None:
        super().__init__()
        self.image = QImage()
        self.colour = OVERLAY_COLOUR
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemUsesExtendedStyleOption, True)

    def boundingRect(self) -> QRectF:  # noqa: N802
        return QRectF(0, 0, self.image.width(), self.image.height())

    def paint(self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None) -> None:
        if not self.image.isNull():
            exposed = option.exposedRect.intersected(self.boundingRect())
            painter.drawImage(exposed, self.image, exposed)

    def set_mask(self, mask: np.ndarray, colour: tuple[int, int, int]) -> None:
        h, w = mask.shape
        if self.image.width() != w or self.image.height() != h:
            self.set_image(overlay_image(mask, colour), colour)
            return
        if colour != self.colour:
            self.set_colour(colour)
        self.update_region(mask, (0, 0, w, h))

    def set_image(self, image: QImage, colour: tuple[int, int, int]) -> None:
        """Show an overlay made by :func:`overlay_image` in ``colour`` (off the GUI thread, for a big mask)."""
        self.prepareGeometryChange()
        self.image = image
        self.colour = colour
        self.update()

    def set_colour(self, colour: tuple[int, int, int]) -> None:
        """Recolour in place, keeping the mask (the alpha byte of each RGBA word)."""
        self.colour = colour
        if self.image.isNull():
            return
        words = self._pixels().view(np.uint32)
        np.bitwise_and(words, _rgba_word((0, 0, 0), 255), out=words)
        np.bitwise_or(words, _rgba_word(colour, 0), out=words)
        self.update()

    def update_region(self, mask: np.ndarray, rect: tuple[int, int, int, int]) -> None:
        x0, y0, x1, y1 = rect
        self._pixels()[y0:y1, x0:x1, 3] = mask[y0:y1, x0:x1]
        self.update(QRectF(x0, y0, x1 - x0, y1 - y0))

    def _pixels(self) -> np.ndarray:
        return _rgba(self.image)


def overlay_image(mask: np.ndarray, colour: tuple[int, int, int] = OVERLAY_COLOUR) -> QImage:
    """The mask overlay: ``colour`` everywhere, the mask as alpha. A QImage may be built on any thread: a
    24-megapixel one is 96 MB, made on a worker rather than on the GUI thread."""
    h, w = mask.shape
    image = QImage(w, h, QImage.Format.Format_RGBA8888)
    # The colour in one pass over 32-bit words, not three strided channel writes. NumPy lets other threads run
    # while it fills; QImage.fill holds the GIL, which froze the window for 70-110 ms at 40 MP.
    np.frombuffer(image.bits(), np.uint32, count=image.sizeInBytes() // 4).fill(_rgba_word(colour, 0))
    _rgba(image)[..., 3] = mask
    return image


def _rgba_word(colour: tuple[int, int, int], alpha: int) -> np.uint32:
    """An RGBA8888 pixel as one 32-bit word (the format keeps R, G, B, A in that order in memory)."""
    r, g, b = (int(c) for c in colour)
    if np.little_endian:
        return np.uint32(r | g << 8 | b << 16 | alpha << 24)
    return np.uint32(r << 24 | g << 16 | b << 8 | alpha)


def _rgba(image: QImage) -> np.ndarray:
    """An RGBA8888 QImage's pixels as a writable ``(H, W, 4)`` view."""
    buffer = np.frombuffer(image.bits(), np.uint8, count=image.sizeInBytes())
    return buffer.reshape(image.height(), image.bytesPerLine())[:, : image.width() * 4].reshape(
        image.height(), image.width(), 4)


class ImageCanvas(QGraphicsView):
    """Zoomable, pannable viewer; in painting mode, left-button drags become strokes."""

    zoom_changed = Signal(float)
    split_changed = Signal(float)  # the before/after line, dragged on the image (0 = left edge, 1 = right)
    stroke_started = Signal(float, float)
    stroke_moved = Signal(float, float)
    stroke_finished = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self._image = _ImageItem()
        self._overlay = _OverlayItem()
        self.scene().addItem(self._image)
        self.scene().addItem(self._overlay)
        self._overlay.setZValue(1)
        self._overlay.setVisible(False)
        self._painting = False
        self._stroking = False
        self._dragging_split = False
        self.overlay_colour = OVERLAY_COLOUR
        self._fit_on_resize = True
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setViewportUpdateMode(QGraphicsView.ViewportUpdateMode.SmartViewportUpdate)
        self.setMouseTracking(True)

    #: Shown on an empty canvas.
    hint = "Open a project (File → Open Project) or create one (File → New Project)."

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802
        if self._image.image.isNull() and self.hint:
            painter.save()
            painter.resetTransform()
            painter.setPen(QColor("#8a8a8a"))
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter, self.hint)
            painter.restore()

    # ------------------------------------------------------------------ images

    def set_image(self, image: QImage, fit: bool = False) -> None:
        changed_size = image.size() != self._image.image.size()
        self._image.prepareGeometryChange()
        self._image.image = image
        self.scene().setSceneRect(QRectF(0, 0, image.width(), image.height()))
        self._image.update()
        if fit or changed_size:
            self.fit()

    def image(self) -> QImage:
        return self._image.image

    def clear(self) -> None:
        """Show nothing but the hint (no project, or the image shown is gone)."""
        self.set_image(QImage())
        self.set_before(None)

    def set_before(self, image: QImage | None) -> None:
        """Show ``image`` left of the split line (before/after); ``None`` turns the split off."""
        self._image.before = image
        self._image.update()

    def set_split(self, fraction: float) -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        if fraction != self._image.split:
            self._image.split = fraction
            self._image.update()
            self.split_changed.emit(fraction)

    @property
    def split(self) -> float:
        return self._image.split

    def comparing(self) -> bool:
        """A before image is shown left of the split line."""
        return self._image.before is not None and self._image.before.size() == self._image.image.size()

    def _near_split(self, event: QMouseEvent) -> bool:
        if not self.comparing():
            return False
        line_x = self.mapFromScene(QPointF(self._image.split * self._image.image.width(), 0)).x()
        return abs(event.position().x() - line_x) <= SPLIT_GRAB_PX

    # ------------------------------------------------------------------ mask overlay

    def set_mask(self, mask: np.ndarray | None, overlay: QImage | None = None) -> None:
        """Show ``mask`` over the image; ``overlay`` is its :func:`overlay_image` in the current overlay colour,
        when made already (off the GUI thread)."""
        if mask is None:
            self._overlay.setVisible(False)
            return
        if overlay is not None:
            self._overlay.set_image(overlay, self.overlay_colour)
        else:
            self._overlay.set_mask(mask, self.overlay_colour)
        self._overlay.setVisible(True)

    def set_overlay_colour(self, colour: tuple[int, int, int]) -> None:
        self.overlay_colour = colour
        self._overlay.set_colour(colour)

    def update_mask(self, mask: np.ndarray, rect: tuple[int, int, int, int]) -> None:
        self._overlay.update_region(mask, rect)

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay.setOpacity(opacity)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible and not self._overlay.image.isNull())

    def set_painting(self, painting: bool) -> None:
        self._painting = painting
        self.setDragMode(QGraphicsView.DragMode.NoDrag if painting else QGraphicsView.DragMode.ScrollHandDrag)
        self.viewport().setCursor(Qt.CursorShape.CrossCursor if painting else Qt.CursorShape.OpenHandCursor)

    # ------------------------------------------------------------------ zoom

    @property
    def zoom(self) -> float:
        return self.transform().m11()

    def set_zoom(self, zoom: float) -> None:
        zoom = min(max(zoom, MIN_ZOOM), MAX_ZOOM)
        self._fit_on_resize = False
        self.setTransform(self.transform().fromScale(zoom, zoom))
        self.zoom_changed.emit(zoom)

    def fit(self) -> None:
        if self._image.image.isNull():
            return
        self.fitInView(self._image.boundingRect(), Qt.AspectRatioMode.KeepAspectRatio)
        self._fit_on_resize = True
        self.zoom_changed.emit(self.zoom)

    def actual_size(self) -> None:
        self.set_zoom(1.0)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.set_zoom(self.zoom * (1.25 ** steps))

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        if self._fit_on_resize:
            self.fit()

    # ------------------------------------------------------------------ strokes

    def _image_point(self, event: QMouseEvent) -> QPointF:
        return self.mapToScene(event.position().toPoint())

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.LeftButton and self._near_split(event):
            self._dragging_split = True  # the before/after line moves with the mouse, as in Lightroom
            return
        if self._painting and event.button() == Qt.MouseButton.LeftButton:
            p = self._image_point(event)
            self._stroking = True
            self.stroke_started.emit(p.x(), p.y())
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging_split:
            width = self._image.image.width()
            self.set_split(self._image_point(event).x() / width if width else 0.5)
            return
        if not self._stroking and not event.buttons():
            split = self._near_split(event)
            idle = Qt.CursorShape.CrossCursor if self._painting else Qt.CursorShape.OpenHandCursor
            self.viewport().setCursor(Qt.CursorShape.SplitHCursor if split else idle)
        if self._stroking:
            p = self._image_point(event)
            self.stroke_moved.emit(p.x(), p.y())
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._dragging_split and event.button() == Qt.MouseButton.LeftButton:
            self._dragging_split = False
            return
        if self._stroking and event.button() == Qt.MouseButton.LeftButton:
            self._stroking = False
            self.stroke_finished.emit()
            return
        super().mouseReleaseEvent(event)
