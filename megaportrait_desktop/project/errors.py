"""Project errors: one typed error with a plain message, and the wording of what the disk or SQLite said."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from pathlib import Path

from ..core.errors import ErrorKind, MegaPortraitError, os_error_message

#: SQLite's primary result codes that name the disk, not the data (sqlite3.h).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN = 3, 8, 10, 11, 13, 14
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_NOTADB = 5, 6, 26
_SQLITE_READONLY_ROLLBACK = 8 | (3 << 8)  # a hot journal that a read-only connection cannot roll back


class ProjectError(MegaPortraitError):
    """The project cannot be opened, read or written as asked; the message says what to do."""

    kind = ErrorKind.PROJECT


class ProjectBusyError(ProjectError):
    """Another process (or window) has the project open for writing; ``holder`` says who, when known."""

    def __init__(self, message: str, holder: object | None = None) -> None:
        super().__init__(message)
        self.holder = holder


class UnsafePathError(ProjectError):
    """A path read from a project database (or a zip) would reach outside the project's ``objects/`` folder."""


def storage_error(exc: OSError, what: str = "the project") -> ProjectError:
    """A :class:`ProjectError` naming a disk problem (full, read-only, no permission) as such."""
    return ProjectError(os_error_message(exc, what))


def sqlite_error(exc: sqlite3.Error, db_path: Path) -> ProjectError:
    """A :class:`ProjectError` for what SQLite said about ``db_path``: damage only when the data is damaged.

    SQLite reports a full disk, a read-only medium and a missing permission with several codes (a full
    disk can also read as "disk I/O error"), so for those the file system itself is asked which one it is.
    """
    extended = getattr(exc, "sqlite_errorcode", None) or 0
    code = extended & 0xFF
    name = db_path.name
    if extended == _SQLITE_READONLY_ROLLBACK:
        return ProjectError(f"{name} was left in the middle of a change by a program that stopped (a crash?); open "
                            "the project for writing once (in the app, or a command that changes it) so the change is "
                            "rolled back, or copy it to a writable disk first.")
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return ProjectError(f"{name} is damaged ({exc}); restore the project from a backup or an exported zip.")
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return ProjectError("The project is busy in another program; close it there and try again.")
    disk = disk_problem(db_path.parent)
    if code == _SQLITE_FULL or disk == errno.ENOSPC:
        return ProjectError(os_error_message(OSError(errno.ENOSPC, "disk full"), "the project"))
    if disk is not None:
        return ProjectError(os_error_message(OSError(disk, os.strerror(disk), str(db_path.parent)), "the project"))
    if code == _SQLITE_READONLY:
        return ProjectError(os_error_message(OSError(errno.EACCES, "read-only", str(db_path)), "the project"))
    if code in (_SQLITE_PERM, _SQLITE_IOERR, _SQLITE_CANTOPEN):
        return ProjectError(f"{name} could not be read or written ({exc}); check that the disk holding the project "
                            "is connected and has free space, then try again.")
    return ProjectError(f"The project database said: {exc}. Try again; if it persists run 'project verify'.")


def disk_problem(folder: Path) -> int | None:
    """``errno.ENOSPC``, ``EROFS`` or ``EACCES`` when the disk holding ``folder`` cannot take a write, else ``None``."""
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return errno.EROFS
    except (OSError, AttributeError):  # AttributeError: no statvfs (Windows)
        pass
    try:
        if shutil.disk_usage(folder).free < 64 * 1024:
            return errno.ENOSPC
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return errno.EACCES
    return None
