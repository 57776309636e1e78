"""The app's log file, ``megaportrait.log`` in the user config folder: one setup for the app and the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

from .paths import config_dir

LOGGER = "megaportrait"


def log_path() -> Path:
    return config_dir() / "megaportrait.log"


def setup_logging() -> Path:
    """Send the ``megaportrait`` loggers to the log file (once per file; later calls change nothing)."""
    root = logging.getLogger(LOGGER)
    path = log_path()
    for handler in root.handlers:
        if isinstance(handler, logging.FileHandler) and Path(handler.baseFilename) == path.resolve():
            return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.NullHandler()  # an unwritable config folder must not stop the app
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return path
