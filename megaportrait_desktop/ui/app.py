"""Start the desktop app: the window appears first; heavy modules (torch) load only when needed."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtWidgets import QApplication

from ..core.paths import config_dir


def _setup_logging() -> Path:
    path = config_dir() / "megaportrait.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("megaportrait")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path


def create_window(project: str | Path | None = None):
    """The main window with a project open: the given one, the last one, or the demo project."""
    from ..project.demo import ensure_demo_project
    from .main_window import MainWindow, settings

    window = MainWindow()
    recent = settings().value("recent", []) or []
    candidates = [project] if project else [*recent[:1]]
    for root in candidates:
        if root and window.open_project(root):
            return window
    window.open_project(ensure_demo_project())  # first start: the demo, ready for Run all
    return window


def run_app(argv: list[str] | None = None, project: str | None = None) -> int:
    from .theme import apply_dark_theme

    _setup_logging()
    app = QApplication.instance() or QApplication(argv or sys.argv)
    app.setApplicationName("MegaPortrait Desktop")
    app.setOrganizationName("MegaPortrait")
    apply_dark_theme(app)
    window = create_window(project)
    window.show()
    # Only once the window is up: the device probe imports torch (on a worker thread).
    from PySide6.QtCore import QTimer

    QTimer.singleShot(300, window.probe_device)
    QTimer.singleShot(600, window.offer_models)
    return app.exec()
