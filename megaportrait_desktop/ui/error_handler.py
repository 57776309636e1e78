"""One handler for the errors nobody caught: in Qt slots, on the main thread and on Python threads.

PySide hands an exception raised in a slot to ``sys.excepthook`` and carries on, so without this the
user would see nothing and the window could go on claiming success. Every such error is written to
``megaportrait.log`` with its traceback and reaches the window through :attr:`UnexpectedErrors.occurred`
(queued onto the GUI thread when it happened elsewhere), which tells the user what failed and what to do.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Signal

from ..core.logs import setup_logging

log = logging.getLogger("megaportrait.ui")


class UnexpectedErrors(QObject):
    """Installs itself as ``sys.excepthook`` and ``threading.excepthook``; emits each error once."""

    occurred = Signal(str, str)  # one line for the user, the traceback

    def __init__(self) -> None:
        super().__init__()
        self.log_path = setup_logging()
        self._previous = (sys.excepthook, threading.excepthook)

    def install(self) -> UnexpectedErrors:
        sys.excepthook = self._on_exception
        threading.excepthook = self._on_thread_exception
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def _on_exception(self, kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            self._previous[0](kind, exc, tb)
            return
        details = "".join(traceback.format_exception(kind, exc, tb))
        log.error("unexpected error\n%s", details)
        self.occurred.emit(describe(exc), details)

    def _on_thread_exception(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_value is not None:
            self._on_exception(args.exc_type, args.exc_value, args.exc_traceback)


def describe(exc: BaseException) -> str:
    """One line naming what failed, for the error box."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
