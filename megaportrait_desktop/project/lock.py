"""The project's single-writer lock: ``project.lock`` beside ``project.db``.

One process at a time may write a project (the desktop app for as long as the project is open, or
one CLI command). The lock is an OS lock on ``project.lock`` taken through ``filelock`` (``flock``
on Linux and macOS, ``LockFileEx`` on Windows). Unlike SQLite's own POSIX advisory locks, an
``flock`` belongs to the open file, not to the process, so code elsewhere in the process that
opens and closes the project's files (a file dialog sniffing types, a thumbnailer) cannot drop
it. The holder writes who it is into the lock file, so a refused second writer can name it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from .errors import ProjectBusyError, ProjectError

LOCK_NAME = "project.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a project open for writing."""

    pid: int
    host: str
    program: str
    since: float

    def describe(self) -> str:
        when = dt.datetime.fromtimestamp(self.since).strftime("%H:%M on %d %b")
        where = "this computer" if self.host == socket.gethostname() else self.host
        return f"{self.program} (process {self.pid} on {where}, since {when})"


class ProjectLock:
    """Held while a process may write the project; release it on close."""

    def __init__(self, root: Path, program: str) -> None:
        self.path = root / LOCK_NAME
        self.program = program
        # thread_local=False: the app takes the lock on the GUI thread and may release it from another.
        self._lock = FileLock(self.path, timeout=0, thread_local=False, preserve_lock_file=True,
                              on_acquired=self._write_holder)

    def acquire(self) -> ProjectLock:
        """Take the lock now or fail: never wait on another program.

        Raises
        ------
        ProjectBusyError
            Another process (or another window of this one) has the project open for writing.
        ProjectError
            The lock file cannot be created (read-only folder, full disk, no permission).
        """
        try:
            self._lock.acquire()
        except Timeout:
            holder = read_holder(self.path.parent)
            who = holder.describe() if holder else "another MegaPortrait window or command"
            raise ProjectBusyError(f"The project {self.path.parent} is open in {who}. Close it there, then try "
                                   "again; reading commands (info, list, export, contact-sheet, verify) work "
                                   "meanwhile.",
                                   holder) from None
        except OSError as exc:
            raise ProjectError(f"Cannot lock the project {self.path.parent} for writing ({exc.strerror or exc}). "
                               "If it is on read-only media or a share without write access, copy it to your "
                               "disk first.") from None
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                self._lock.release(force=True)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def _write_holder(self, fd: int) -> None:
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "program": self.program,
                             "since": dt.datetime.now().timestamp()}).encode()
        # In place through the locked descriptor: a rename would give waiters a different file to lock.
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, record)


def read_holder(root: Path) -> Holder | None:
    """Who wrote the lock file last (the current holder, when the lock is held)."""
    try:
        data = json.loads((root / LOCK_NAME).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["program"]), float(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def held_elsewhere(root: Path) -> bool:
    """Whether another process (or another open project in this one) holds the project's lock now."""
    probe = FileLock(root / LOCK_NAME, timeout=0, thread_local=False, preserve_lock_file=True)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return False  # no lock file can be made (read-only media): nobody can be writing here
    probe.release(force=True)
    return False
