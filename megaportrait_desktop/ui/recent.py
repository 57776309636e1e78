"""The recent-projects list in the UI settings: stored and read back as a list of folder paths.

QSettings' INI format writes a one-element list as a plain string and reads it back as one, so the
value is always read with ``type=list`` and checked item by item.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

from ..core.paths import config_dir

MAX_RECENT = 8


def settings() -> QSettings:
    """UI settings (window layout, recent projects) in the user config folder (tests redirect it)."""
    return QSettings(str(config_dir() / "ui.ini"), QSettings.Format.IniFormat)


def recent_projects() -> list[str]:
    """The recent project folders, newest first."""
    value = settings().value("recent", [], type=list) or []
    return [str(item) for item in value if isinstance(item, str) and item.strip()][:MAX_RECENT]


def remember(root: str | Path) -> list[str]:
    """Put ``root`` first in the list; returns the new list."""
    root = str(root)
    recent = [root, *(r for r in recent_projects() if r != root)][:MAX_RECENT]
    _store(recent)
    return recent


def forget(root: str | Path) -> list[str]:
    """Drop ``root`` (a project that is no longer there); returns the new list."""
    recent = [r for r in recent_projects() if r != str(root)]
    _store(recent)
    return recent


def _store(recent: list[str]) -> None:
    s = settings()
    s.setValue("recent", list(recent))
    s.sync()
