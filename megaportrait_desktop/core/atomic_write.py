"""Writing a file so that a crash or a full disk never leaves half of it under its real name."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _read_umask() -> int:
    # The only portable way to read the umask is to set it; done once, at import, before any thread writes.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: The mode a plain ``open(path, "w")`` would give a new file (0644 under the usual umask 022).
NEW_FILE_MODE = 0o666 & ~_read_umask()


def write_bytes_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it to disk, then rename it into place.

    The file gets the user's usual mode (``mkstemp`` makes it 0600, which would keep exports and
    project files from anyone the user shares them with). ``durable=False`` skips the fsync (bulk
    fills where a crash may lose the newest files). On any ``OSError`` the temporary file is removed
    and the error re-raised for the caller to word.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, NEW_FILE_MODE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
