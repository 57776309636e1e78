"""Temporary files and folders of exports and imports, named for the process that owns them.

An export copies the client's database beside the project (``.mp-export-<host>-<pid>-<token>.db``, never
in ``/tmp``) and writes ``.<zip name>.part-<host>-<pid>-<token>`` beside the zip; an import unpacks into
``.<name>.importing-<host>-<pid>-<token>`` beside its target.
When such a process is killed, its leftover is found later by its name: it is stale once its process is
gone from this machine, or after a week whatever its owner (another machine on a shared drive).
``verify --repair`` and the next export or import remove stale ones.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import tempfile
import time
from pathlib import Path

EXPORT_PREFIX = ".mp-export-"
#: After this long a leftover is removed even when its owner cannot be checked (another machine).
MAX_AGE_S = 7 * 24 * 3600
#: Leftovers of versions that copied the database to the temp folder: removed after a day.
LEGACY_EXPORT_AGE_S = 24 * 3600

_OWNER = r"(?P<host>[A-Za-z0-9-]{0,40})-(?P<pid>\d{1,10})-(?P<token>[0-9a-f]{8})"
_EXPORT = re.compile(re.escape(EXPORT_PREFIX) + _OWNER + r"\.db(-journal|-wal|-shm)?")
_IMPORT = re.compile(r"\..+\.importing-" + _OWNER)
_PART = re.compile(r"\..+\.part-" + _OWNER)


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:40]


def owner_tag() -> str:
    """``<host>-<pid>-<token>``: who made a temporary file, so a later run can tell a live one from a leftover."""
    return f"{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def export_snapshot_path(folder: Path) -> Path:
    """Where an export keeps its copy of the database: a hidden file in ``folder`` (the project's, when it can
    be written)."""
    return folder / f"{EXPORT_PREFIX}{owner_tag()}.db"


def import_staging_path(target: Path) -> Path:
    """The folder an import unpacks into, beside its ``target``."""
    return target.parent / f".{target.name}.importing-{owner_tag()}"


def partial_zip_path(dest: Path) -> Path:
    """Where an export writes its zip until it is complete (then renamed to ``dest``)."""
    return dest.parent / f".{dest.name}.part-{owner_tag()}"


def is_stale(path: Path) -> bool:
    """Whether ``path`` (named by :func:`owner_tag`) was left by a process that is gone."""
    match = _EXPORT.fullmatch(path.name) or _IMPORT.fullmatch(path.name) or _PART.fullmatch(path.name)
    if match is None:
        return False
    try:
        age = time.time() - path.lstat().st_mtime
    except OSError:
        return False
    if age > MAX_AGE_S:
        return True
    if match.group("host") != _host():
        return False
    return not _alive(int(match.group("pid")))


def sweep(folder: Path) -> list[Path]:
    """Remove the stale export copies and import folders in ``folder``; returns what was removed."""
    removed = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if not is_stale(entry):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        except OSError:
            continue
        removed.append(entry)
    return removed


def sweep_legacy_exports() -> list[Path]:
    """Remove what earlier versions' killed exports left in the temp folder (``mp-export-*/project.db``)."""
    removed = []
    tmp = Path(tempfile.gettempdir())
    for folder in tmp.glob("mp-export-*"):
        try:
            if (folder.is_symlink() or not folder.is_dir()
                    or {p.name for p in folder.iterdir()} - {"project.db", "project.db-journal"}
                    or time.time() - folder.stat().st_mtime < LEGACY_EXPORT_AGE_S):
                continue
            shutil.rmtree(folder)
        except OSError:
            continue
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":
        return True  # no safe, cheap check here (os.kill would signal it): the age decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
