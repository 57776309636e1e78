"""Error dialogs that name the action to take; unexpected errors offer their details to copy."""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

log = logging.getLogger("megaportrait.ui")


def show_error(parent: QWidget | None, title: str, message: str, details: str = "",
               action: tuple[str, Callable[[], None]] | None = None) -> QMessageBox:
    """A non-blocking error box: the message, an optional action button (e.g. "Open model settings")
    and, for unexpected errors, "Copy details" (the details also go to the log file)."""
    box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Close, parent)
    box.setObjectName("errorDialog")
    if details:
        log.error("%s: %s\n%s", title, message, details)
        box.setDetailedText(details)
        copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
        copy.clicked.disconnect()
        copy.clicked.connect(lambda: QApplication.clipboard().setText(f"{message}\n\n{details}"))
    if action is not None:
        label, callback = action
        button = box.addButton(label, QMessageBox.ButtonRole.AcceptRole)
        button.clicked.connect(callback)
    box.setModal(False)
    show_over(parent, box)
    return box


def show_over(parent: QWidget | None, dialog: QWidget) -> None:
    """Show a non-modal dialog above its window; one raised before the window is on screen (at start-up)
    waits for it, so it never ends up behind the main window."""
    window = parent.window() if parent is not None else None
    if window is None or window.isVisible():
        dialog.show()
        dialog.raise_()
        return
    window.installEventFilter(_ShowWhenVisible(window, dialog))


class _ShowWhenVisible(QObject):
    def __init__(self, window: QWidget, dialog: QWidget) -> None:
        super().__init__(window)
        self.dialog = dialog

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.Show:
            watched.removeEventFilter(self)
            # After the window's own show has finished, so the window manager stacks the dialog on top.
            QTimer.singleShot(0, lambda: (self.dialog.show(), self.dialog.raise_(), self.deleteLater()))
        return False
