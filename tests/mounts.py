"""Real small and read-only disks for tests: a tmpfs mounted for the test (needs root, else the test skips).

A full disk and a read-only medium are hard to fake honestly: SQLite, the file system and our code
each react to them, so the tests use a real one. ``size`` is in bytes; ``read_only()`` remounts it
read-only (which even root cannot write), ``fill()`` takes every free byte and returns the filler.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


class Disk:
    def __init__(self, path: Path) -> None:
        self.path = path

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True, capture_output=True)

    def writable(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True, capture_output=True)

    def fill(self) -> Path:
        """Take every free byte (the file system then refuses any write with ENOSPC); returns the filler."""
        filler = self.path / "filler.bin"
        for name, block in (("filler.bin", 1 << 16), ("filler2.bin", 512)):  # then the last blocks, a few at a time
            with contextlib.suppress(OSError), open(self.path / name, "ab", buffering=0) as out:
                while True:
                    out.write(b"\0" * block)
        assert shutil.disk_usage(self.path).free < 64 * 1024
        return filler

    def free(self) -> None:
        for name in ("filler.bin", "filler2.bin"):
            (self.path / name).unlink(missing_ok=True)


@contextlib.contextmanager
def tmpfs(folder: Path, size: int) -> Iterator[Disk]:
    """Mount a tmpfs of ``size`` bytes on ``folder`` (created) for the block; skips the test where that is not
    allowed (not root, no mount command)."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs (a real full or read-only disk)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield Disk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
