"""Start the desktop app: the window appears first; heavy modules (torch) load only when needed."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from ..core.logs import setup_logging


def create_window(project: str | Path | None = None):
    """The main window with a project open: the given one, the last one, or the demo project.

    A recent project that is gone is dropped from the list with a note in the status bar; any
    other error opening it waits for the window to show (no dialog behind the main window).
    """
    from ..project.demo import ensure_demo_project
    from .empty_hints import first_start, show_welcome
    from .main_window import MainWindow
    from .recent import recent_projects

    welcome = first_start()
    window = MainWindow()
    _score_off_the_gil()
    if welcome:
        show_welcome(window)
    candidates = [project] if project else recent_projects()[:1]
    for root in candidates:
        if root and window.open_project(root):
            return window
    if window.project is None:
        window.open_project(ensure_demo_project())  # first start: the demo, ready for Run all
    return window


def run_app(argv: list[str] | None = None, project: str | None = None) -> int:
    from .error_handler import UnexpectedErrors
    from .theme import apply_dark_theme

    setup_logging()
    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("MegaPortrait Desktop")
    app.setOrganizationName("MegaPortrait")
    apply_dark_theme(app)
    errors = UnexpectedErrors().install()
    window = create_window(project)
    window.attach_error_handler(errors)
    window.show()
    # Only once the window is up: the device probe imports torch (on a worker thread).
    from PySide6.QtCore import QTimer

    QTimer.singleShot(300, window.probe_device)
    QTimer.singleShot(600, window.offer_models)
    return app.exec()


def _score_off_the_gil() -> None:
    """dlib's ResNet holds the GIL for each identity score: in the app it runs in a helper process. Loading
    dlib and its 5-point model here holds the GIL too; done on a thread as the window opens, it is not in
    the first run, where it stalled the window."""
    import threading

    from ..core.dlib_recogniser import load_dlib_backend, use_descriptor_process
    from ..core.errors import MegaPortraitError

    use_descriptor_process()

    def warm() -> None:
        with contextlib.suppress(MegaPortraitError):  # no scorer installed: a run says so when it needs one
            load_dlib_backend()
    threading.Thread(target=warm, name="identity-scorer-load", daemon=True).start()
