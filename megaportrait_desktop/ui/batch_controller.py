"""The app's batch queue: a :class:`project.batch_run.BatchRun` on its own thread, talking through signals.

The window only submits and listens: it calls the slots (start, pause, cancel, ...) through queued
signals, and hears about every job from :attr:`BatchController.job_updated`. Results are recorded
here, in the app's process, the only one that writes the project; the workers (one process per GPU,
one thread without a GPU, or actors on a Ray cluster: Settings → Compute) never open it.
"""

from __future__ import annotations

import logging
import time

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from ..core.runner import RunnerLost
from ..project import Project, queue
from ..project.batch_run import BatchRun, JobUpdate

log = logging.getLogger("megaportrait.ui")


class BatchController(QObject):
    """Owns the runner and the loop; lives on its own thread (``start_thread``)."""

    job_updated = Signal(object)       # JobUpdate
    queue_changed = Signal()           # states, order or counts changed
    running_changed = Signal(bool)     # the loop is working through the queue
    failed = Signal(str)               # the runner itself could not start or went away
    eta_changed = Signal(float)        # seconds left (-1 when not known yet)

    # Requests from the GUI thread (queued onto the controller's thread).
    _start = Signal()
    _command = Signal(str, object)

    def __init__(self, runner_factory=None) -> None:
        super().__init__()
        self.project: Project | None = None
        self._runner_factory = runner_factory
        self._runner = None
        self._stale_runner = False
        self._run: BatchRun | None = None
        self._timer: QTimer | None = None
        self._thread = QThread()
        self._thread.setObjectName("batch-queue")
        self.moveToThread(self._thread)
        self._start.connect(self._on_start)
        self._command.connect(self._on_command)
        self._thread.start()

    # ------------------------------------------------------------------ GUI-thread API

    def set_project(self, project: Project | None) -> None:
        self._command.emit("project", project)

    def start(self) -> None:
        """Work through every batch that is not paused."""
        self._start.emit()

    def pause(self, batch_id: int | None = None) -> None:
        self._command.emit("pause", batch_id)

    def resume(self, batch_id: int | None = None) -> None:
        self._command.emit("resume", batch_id)

    def cancel(self, job_ids: list[int] | None = None) -> None:
        self._command.emit("cancel", job_ids)

    def retry_failed(self, batch_id: int | None = None) -> None:
        self._command.emit("retry", batch_id)

    def move(self, job_id: int, steps: int) -> None:
        self._command.emit("move", (job_id, steps))

    def use_new_runner(self) -> None:
        """Settings → Compute changed: the next batch start makes a new runner (a running batch finishes first)."""
        self._command.emit("runner", None)

    def shutdown(self) -> None:
        self._command.emit("shutdown", None)
        self._thread.quit()
        self._thread.wait(30_000)

    # ------------------------------------------------------------------ the controller's thread

    @Slot()
    def _on_start(self) -> None:
        if self.project is None:
            return
        queue.set_paused(self.project, False)
        self._ensure_loop()

    @Slot(str, object)
    def _on_command(self, command: str, argument) -> None:
        try:
            if command == "project":
                self._stop_loop()
                self.project = argument
                return
            elif command == "shutdown":
                self._stop_loop()
                self._close_runner()
                return
            elif command == "runner":
                self._stale_runner = True
                if self._timer is None:
                    self._close_runner()
                return
            elif self.project is None:
                return
            elif command == "pause":
                queue.set_paused(self.project, True, argument)
                if self._run is not None:  # jobs handed to a worker but not started go back to waiting
                    self._run.withdraw([j.id for j in queue.queue_jobs(self.project, argument, ("queued",))])
            elif command == "resume":
                queue.set_paused(self.project, False, argument)
                self._ensure_loop()
            elif command == "cancel":
                if self._run is not None:
                    self._run.cancel(argument)
                else:
                    queue.cancel(self.project, job_ids=argument)
            elif command == "retry":
                queue.retry_failed(self.project, argument)
                self._ensure_loop()
            elif command == "move":
                queue.move(self.project, *argument)
        except Exception as exc:  # noqa: BLE001 - a command that fails is said, the queue goes on
            log.exception("batch command %s failed", command)
            self.failed.emit(str(exc))
        self.queue_changed.emit()

    def _ensure_loop(self) -> None:
        if self._timer is not None:
            return
        try:
            if self._runner is None:
                self._runner = self._runner_factory() if self._runner_factory else _default_runner()
        except Exception as exc:  # noqa: BLE001 - no worker could be started: say why
            log.exception("the batch runner could not start")
            self.failed.emit(f"The batch workers could not start: {exc}")
            return
        self._run = BatchRun(self.project, self._runner, self._on_update)
        self._timer = QTimer(self)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._on_timer)
        self._timer.start()
        self.running_changed.emit(True)

    def _stop_loop(self) -> None:
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
            self.running_changed.emit(False)
        if self._run is not None and self._runner is not None:
            self._run.withdraw()
            deadline = time.monotonic() + 10
            while self._run.in_flight() and time.monotonic() < deadline:
                self._run.step(0.1)
        self._run = None

    @Slot()
    def _on_timer(self) -> None:
        try:
            self._run.step(0.05)
        except RunnerLost as exc:  # the cluster went away: its jobs wait in the queue, the loop stops
            log.warning("the batch runner is gone: %s", exc)
            self._run.abandon()
            self._timer.stop()
            self._timer = None
            self._run = None
            self._close_runner()
            self.failed.emit(str(exc))
            self.running_changed.emit(False)
            self.queue_changed.emit()
            return
        except Exception as exc:  # noqa: BLE001 - the queue must survive a bad step
            log.exception("batch step failed")
            self.failed.emit(str(exc))
        if self._run.finished():
            self._timer.stop()
            self._timer = None
            if self._stale_runner:
                self._close_runner()
            self.running_changed.emit(False)
            self.queue_changed.emit()

    def _close_runner(self) -> None:
        if self._runner is not None:
            try:
                self._runner.close()
            except Exception:  # noqa: BLE001 - a runner that cannot close cleanly (a cluster gone) is dropped anyway
                log.exception("closing the batch runner")
            self._runner = None
        self._stale_runner = False

    def _on_update(self, update: JobUpdate) -> None:
        self.job_updated.emit(update)
        if update.state != "progress":
            eta = self._run.eta_seconds() if self._run else None
            self.eta_changed.emit(-1.0 if eta is None else eta)
            self.queue_changed.emit()


def _default_runner():
    """This computer, or the Ray cluster chosen in Settings → Compute."""
    from .compute_settings import make_runner

    return make_runner()
