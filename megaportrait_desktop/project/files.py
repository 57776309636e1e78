"""Content-addressed file storage inside a project folder.

A file is stored once under ``objects/<first two hex>/<sha256><suffix>``; rows refer to it by its
sha256. Writes go to a temporary name, are flushed to disk and renamed, so a crash leaves either
the whole file or an orphan ``.part`` that ``repair`` removes, never a half file under a real name.

A project folder may come from anyone (a zip, a USB stick), so a path read from its database is
never trusted: :meth:`FileStore.absolute` accepts only the store's own form and refuses any path that
a link would take outside ``objects/``. Nothing here reads, writes or deletes a file anywhere else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic_write import write_bytes_atomically
from .errors import ProjectError, UnsafePathError, storage_error

OBJECTS = "objects"
#: The suffixes the store writes (imported photos, masks, stages, outputs, thumbnails, LoRAs).
SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".safetensors", ".img")
_STORED = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{64})(\.[a-z]{3,11})?")
#: Attempts at a write that a concurrent delete keeps undoing (it removes the fan-out folder).
_WRITE_ATTEMPTS = 8

_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: str  # relative to the project folder, with forward slashes
    size: int
    kind: str


def check_stored_path(relative: object, sha256: str | None = None) -> str:
    """``relative`` when it has the store's own form, ``objects/xx/<sha256><suffix>``; else :class:`UnsafePathError`.

    With ``sha256`` the path must also be that file's (a row cannot name another row's file).
    """
    text = relative if isinstance(relative, str) else ""
    match = _STORED.fullmatch(text)
    ok = (match is not None and match.group(2).startswith(match.group(1))
          and (match.group(3) or "") in ("", *SUFFIXES) and (sha256 is None or match.group(2) == sha256))
    if not ok:
        shown = str(relative)[:120]
        raise UnsafePathError(f"The project names a file '{shown}' that is not one of its own stored files "
                              "(outside its objects folder, or under another file's hash); it is not used. "
                              "Run 'project verify --repair' to drop the rows that name it.")
    return text


def store_lock(root: Path) -> threading.RLock:
    """The in-process lock of the project at ``root``: held from storing files to committing their rows, and by
    garbage collection and repair, so neither sees a writer's files as orphans. One per folder, shared by every
    :class:`FileStore` of that folder in this process."""
    key = os.path.realpath(root)
    with _locks_guard:
        return _locks.setdefault(key, threading.RLock())


class FileStore:
    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root = root
        #: fsync each file before it is referenced; off only for bulk benchmarks.
        self.durable = durable
        self.lock = store_lock(root)

    def relative_path(self, sha256: str, suffix: str) -> str:
        return f"{OBJECTS}/{sha256[:2]}/{sha256}{suffix}"

    def absolute(self, relative: str, sha256: str | None = None) -> Path:
        """The file's path, once checked: the store's form, and no link on the way out of ``objects/``.

        Raises
        ------
        UnsafePathError
            For any other path (absolute, ``..``, another form, a link in ``objects/``).
        """
        check_stored_path(relative, sha256)
        path = self.root / relative
        # realpath follows every link (and Windows junction): the file must resolve to where it is named.
        expected = os.path.join(os.path.realpath(self.root), *relative.split("/"))
        if os.path.realpath(path) != expected:
            raise UnsafePathError(f"The project's stored file {relative} is a link (or lies in a linked folder); "
                                  "links could reach files outside the project, so it is not used. Run "
                                  "'project verify --repair' to drop it.")
        return path

    def is_safe(self, relative: str, sha256: str | None = None) -> bool:
        try:
            self.absolute(relative, sha256)
        except UnsafePathError:
            return False
        return True

    def put(self, data: bytes, suffix: str, kind: str) -> StoredFile:
        """Store ``data`` (if not already there) and describe it.

        Safe against a concurrent delete of the same file or of its fan-out folder (History → Delete while
        an output is recorded): the write is tried again rather than failing.
        """
        if suffix not in SUFFIXES:
            raise ValueError(f"the store does not keep {suffix!r} files")
        sha = hashlib.sha256(data).hexdigest()
        rel = self.relative_path(sha, suffix)
        target = self.absolute(rel, sha)
        for _ in range(_WRITE_ATTEMPTS):
            if self._reuse(target, len(data)) or self._write(target, data):
                return StoredFile(sha, rel, len(data), kind)
        raise ProjectError("Could not write into the project: its files kept disappearing while they were written "
                           "(another program deleting them?). Nothing was changed.")

    @staticmethod
    def _reuse(target: Path, size: int) -> bool:
        """Whether ``target`` already holds the data; its time is refreshed so a garbage collection running in
        another process sees it was just used again and leaves it."""
        try:
            st = os.stat(target)
        except FileNotFoundError:
            return False  # not there, or deleted under us: write it
        except OSError as exc:
            raise storage_error(exc) from None
        if not (stat.S_ISREG(st.st_mode) and st.st_size == size):
            return False
        try:
            os.utime(target)
        except FileNotFoundError:
            return False
        except OSError:
            pass  # a read-only medium: the file is there all the same
        return True

    def _write(self, target: Path, data: bytes) -> bool:
        """Write ``target``; ``False`` when a concurrent delete removed its folder under us (try again)."""
        try:
            write_bytes_atomically(target, data, durable=self.durable)
        except (FileNotFoundError, FileExistsError):  # FileExistsError: pathlib's mkdir saw the folder, then not
            if not self.root.is_dir():
                raise ProjectError(f"The project folder {self.root} is gone (a disconnected drive?); nothing was "
                                   "changed.") from None
            return False
        except OSError as exc:
            raise storage_error(exc) from None
        return True

    def remove(self, relative: str, sha256: str | None = None) -> None:
        """Delete a stored file; only ever one inside ``objects/`` (see :meth:`absolute`)."""
        # The fan-out folder stays: removing it here would race a writer between its mkdir and its file
        # (see :meth:`prune`, which repair runs).
        self.absolute(relative, sha256).unlink(missing_ok=True)

    def remove_stray(self, relative: str) -> None:
        """Delete something :meth:`walk` found under ``objects/`` that no row names (a ``.part``, a link).

        A link is removed itself, never what it points to.
        """
        parts = relative.split("/")
        if parts[0] != OBJECTS or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise UnsafePathError(f"'{relative[:120]}' is not inside the project's objects folder; not removed.")
        path = self.root / relative
        folder = os.path.join(os.path.realpath(self.root), *parts[:-1])
        if os.path.realpath(path.parent) != folder:
            raise UnsafePathError(f"{relative} lies in a linked folder; not removed.")
        try:
            if path.is_dir() and not path.is_symlink():
                return  # a real folder: walk() lists its files instead
            os.unlink(path)
        except FileNotFoundError:
            return

    def prune(self) -> None:
        """Remove empty fan-out folders (``objects/xx``). Run under :attr:`lock`, as repair does."""
        base = self.root / OBJECTS
        if base.is_symlink() or not base.is_dir():
            return
        for folder in base.iterdir():
            if folder.is_dir() and not folder.is_symlink():
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only an empty one goes

    def walk(self) -> list[str]:
        """Everything under ``objects/`` that is not a folder (relative paths): stored files, ``.part``
        leftovers, and links (listed, never followed)."""
        base = self.root / OBJECTS
        if base.is_symlink() or not base.is_dir():
            return []
        found = []
        for folder, dirs, files in os.walk(base, followlinks=False):
            here = Path(folder)
            links = [d for d in dirs if (here / d).is_symlink()]
            for name in (*files, *links):
                found.append((here / name).relative_to(self.root).as_posix())
        return sorted(found)

    def age(self, relative: str) -> float:
        """Seconds since a file under ``objects/`` was last written (or reused); 0 when it is gone."""
        try:
            return time.time() - os.lstat(self.root / relative).st_mtime
        except OSError:
            return 0.0


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
