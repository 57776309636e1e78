"""Image files dropped from a file manager onto a list (References, Identities, an identity's photos)."""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPoint, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QAbstractItemView

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp")


def dropped_images(event: QDropEvent) -> list[str]:
    """The local image files a drop carries (folders and other files are left out)."""
    paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
    return [p for p in paths if p.lower().endswith(IMAGE_SUFFIXES)]


class FileDrops(QObject):
    """Accepts image files dropped on ``view``; ``dropped`` gives the paths and the drop point (viewport
    coordinates, to tell which item they fell on)."""

    dropped = Signal(list, QPoint)

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        view.setAcceptDrops(True)
        view.viewport().setAcceptDrops(True)
        view.setDropIndicatorShown(True)
        view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            assert isinstance(event, (QDragEnterEvent, QDragMoveEvent))
            if event.mimeData().hasUrls():
                event.acceptProposedAction()
                return True
        elif event.type() == QEvent.Type.Drop:
            assert isinstance(event, QDropEvent)
            paths = dropped_images(event)
            if paths:
                event.acceptProposedAction()
                point = event.position().toPoint()
                # After the drop returns: what it starts (a name dialog) must not keep the file manager waiting.
                QTimer.singleShot(0, lambda: self.dropped.emit(paths, point))
                return True
        return False
