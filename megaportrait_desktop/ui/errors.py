"""Error dialogs that name the action to take; unexpected errors offer their details to copy."""

from __future__ import annotations

import logging
from collections.abc import Callable

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
    box.show()
    return box


def action_for(message: str) -> str | None:
    """Which setting a failure points to, judged from its message (model files, memory, ...)."""
    lowered = message.lower()
    if "model" in lowered and ("missing" in lowered or "not installed" in lowered or "install" in lowered):
        return "models"
    if "out of memory" in lowered or "out of gpu memory" in lowered:
        return "device"
    return None
