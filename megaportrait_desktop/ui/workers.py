"""The long-lived GPU worker: one QThread that runs queued jobs one at a time.

It keeps whatever the jobs load (models) in :attr:`GpuWorker.cache` between runs. A job is a
plain function of ``(on_progress, cancel, cache)`` that runs entirely on the worker thread; the
worker only emits signals (it never touches a widget). Short CPU work (imports, thumbnails) uses
superqt's ``create_worker`` instead (see :func:`run_in_background`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

from ..core.errors import REMEDIES, Cancelled, ErrorKind, classify
from ..core.progress import CancelToken, Progress
from .images import to_qimage

log = logging.getLogger("megaportrait.ui")

JobFunction = Callable[[Callable[[Progress], None], CancelToken, dict], object]


@dataclass(frozen=True)
class JobFailure:
    """Why a job failed, typed: the window picks its words and remedy from ``kind``, not from the text."""

    kind: ErrorKind
    message: str
    remedy: str
    #: The traceback, for failures that are bugs (empty otherwise).
    details: str = ""

    @classmethod
    def of(cls, exc: BaseException, label: str) -> JobFailure:
        kind = classify(exc)
        if kind is ErrorKind.MEMORY and not str(exc):
            message = "Out of memory."
        elif kind is ErrorKind.INTERNAL:
            message = f"Unexpected error in '{label}': {type(exc).__name__}: {exc}"
        else:
            message = str(exc)
        details = traceback.format_exc() if kind in (ErrorKind.INTERNAL, ErrorKind.MEMORY) else ""
        return cls(kind, message, REMEDIES[kind], details)


@dataclass
class Job:
    """A unit of GPU work: ``run(on_progress, cancel, cache)`` returns the job's result."""

    label: str
    run: JobFunction
    kind: str = "generate"  # generate | train
    id: int = 0
    cancel: CancelToken = field(default_factory=CancelToken)


class GpuWorker(QObject):
    """Runs jobs one at a time on its own thread and reports through signals only."""

    started = Signal(int, str)                  # job id, label
    progress = Signal(int, str, int, int, str)  # job id, stage, step, total, message
    preview = Signal(int, QImage)               # job id, a cheap intermediate image
    finished = Signal(int, object)              # job id, the job's typed outcome (see ui.jobs)
    failed = Signal(int, object)                # job id, a JobFailure
    cancelled = Signal(int)                     # job id
    queue_changed = Signal(int)                 # jobs waiting (not counting the running one)
    _wake = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict = {}
        #: Held while a job runs: the live preview renders drafts with the same models between jobs.
        self.gpu_lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._lock = threading.Lock()
        self._current: Job | None = None
        self._ids = itertools.count(1)
        self._thread = QThread()
        self._thread.setObjectName("gpu-worker")
        self.moveToThread(self._thread)
        self._wake.connect(self._drain)
        self._thread.start()

    # ------------------------------------------------------------------ GUI-thread API

    def submit(self, job: Job) -> int:
        """Queue a job; returns its id. Safe to call from any thread."""
        job.id = next(self._ids)
        with self._lock:
            self._queue.append(job)
            waiting = len(self._queue)
        self.queue_changed.emit(waiting)
        self._wake.emit()
        return job.id

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel the running job (or the given one, queued or running)."""
        with self._lock:
            if job_id is not None:
                for job in list(self._queue):
                    if job.id == job_id:
                        self._queue.remove(job)
                        self.cancelled.emit(job.id)
            current = self._current
        if current is not None and (job_id is None or current.id == job_id):
            current.cancel.cancel()

    @property
    def busy(self) -> bool:
        with self._lock:
            return self._current is not None or bool(self._queue)

    def shutdown(self, wait_ms: int = 10_000) -> None:
        """Cancel everything and stop the thread (on app exit)."""
        with self._lock:
            self._queue.clear()
        self.cancel()
        self._thread.quit()
        self._thread.wait(wait_ms)

    # ------------------------------------------------------------------ worker thread

    @Slot()
    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._current = None
                    return
                job = self._queue.popleft()
                self._current = job
                waiting = len(self._queue)
            self.queue_changed.emit(waiting)
            self._run(job)

    def _run(self, job: Job) -> None:
        self.started.emit(job.id, job.label)

        def on_progress(p: Progress) -> None:
            self.progress.emit(job.id, p.stage, p.step, p.total, p.message)
            if isinstance(p.preview, np.ndarray):
                self.preview.emit(job.id, to_qimage(p.preview))

        try:
            job.cancel.check()
            with self.gpu_lock:
                result = job.run(on_progress, job.cancel, self.cache)
        except Cancelled:
            self.cancelled.emit(job.id)  # the partial result is dropped with the stack
        except Exception as exc:  # noqa: BLE001 - the worker must survive anything a job does
            failure = JobFailure.of(exc, job.label)
            if failure.kind is ErrorKind.INTERNAL:
                log.exception("job %s failed", job.label)
            self.failed.emit(job.id, failure)
        else:
            self.finished.emit(job.id, result)
        finally:
            with self._lock:
                self._current = None


def run_in_background(fn: Callable, *args, on_done: Callable | None = None, on_error: Callable | None = None,
                      **kwargs):
    """Short CPU work (imports, thumbnails) on a superqt worker thread, with an explicit error handler."""
    from superqt.utils import create_worker

    connect: dict = {}
    if on_done:
        connect["returned"] = on_done
    if on_error:
        connect["errored"] = on_error
    return create_worker(fn, *args, _connect=connect, _start_thread=True, **kwargs)
