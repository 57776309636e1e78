"""Content-addressed file storage inside a project folder.

A file is stored once under ``objects/<first two hex>/<sha256><suffix>``; rows refer to it by its
sha256. Writes go to a temporary name, are flushed to disk and renamed, so a crash leaves either
the whole file or an orphan ``.part`` that ``repair`` removes, never a half file under a real name.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path

from ..core.atomic_write import write_bytes_atomically
from .errors import ProjectError

OBJECTS = "objects"


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    path: str  # relative to the project folder, with forward slashes
    size: int
    kind: str


class FileStore:
    def __init__(self, root: Path, durable: bool = True) -> None:
        self.root = root
        #: fsync each file before it is referenced; off only for bulk benchmarks.
        self.durable = durable

    def relative_path(self, sha256: str, suffix: str) -> str:
        return f"{OBJECTS}/{sha256[:2]}/{sha256}{suffix}"

    def absolute(self, relative: str) -> Path:
        return self.root / relative

    def put(self, data: bytes, suffix: str, kind: str) -> StoredFile:
        """Store ``data`` (if not already there) and describe it."""
        sha = hashlib.sha256(data).hexdigest()
        rel = self.relative_path(sha, suffix)
        target = self.root / rel
        if not (target.is_file() and target.stat().st_size == len(data)):
            self._write(target, data)
        return StoredFile(sha, rel, len(data), kind)

    def _write(self, target: Path, data: bytes) -> None:
        try:
            write_bytes_atomically(target, data, durable=self.durable)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise ProjectError("The disk holding the project is full; free some space and try again. "
                                   "Nothing was changed.") from None
            raise ProjectError(f"Could not write into the project ({exc.strerror}); nothing was changed.") from None

    def remove(self, relative: str) -> None:
        path = self.root / relative
        path.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # drop the fan-out folder once it is empty

    def walk(self) -> list[str]:
        """Every file under ``objects/`` (relative paths), ``.part`` leftovers included."""
        base = self.root / OBJECTS
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
