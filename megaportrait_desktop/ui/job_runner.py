"""Runs and trainings from the window to the GPU worker, each written to the project's jobs table first.

:class:`JobRunner` is what the window talks to: it queues a job in the project, hands the work to
the long-lived :class:`.workers.GpuWorker`, and passes the worker's typed outcomes on, with the
kind of job each belongs to.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QImage

from ..core.request import RunRequest
from ..project import Project
from .jobs import queue_run, queue_training, run_job, training_job
from .workers import GpuWorker, Job, JobFailure


class JobRunner(QObject):
    """One project's jobs on the worker; ``training`` maps running trainings to their identities."""

    run_finished = Signal(object)            # RunOutcome
    training_finished = Signal(object)       # TrainingOutcome
    failed = Signal(bool, object)            # was a training, JobFailure
    cancelled = Signal(bool)                 # was a training
    training_progress = Signal(int, float, str)  # identity id, fraction, message
    run_progress = Signal(str, int, int, str)    # stage, step, total, message
    #: The worker's own ``started`` and ``preview``, on the GUI thread: a function connected straight to a
    #: signal of the worker (which lives on its own thread) runs on that thread, where no widget may be touched.
    started = Signal(int, str)                   # job id, label
    preview = Signal(int, QImage)                # job id, a cheap intermediate image

    def __init__(self, worker: GpuWorker, scenes=None) -> None:
        super().__init__()
        self.worker = worker
        #: The scene cache runs share with the live preview (``core.inputs.SceneCache``).
        self.scenes = scenes
        self.project: Project | None = None
        self.training: dict[int, int] = {}      # worker job id → identity id
        self._rows: dict[int, int] = {}         # worker job id → the project's jobs-table row
        worker.finished.connect(self._on_worker_finished)
        worker.failed.connect(self._on_worker_failed)
        worker.cancelled.connect(self._on_worker_cancelled)
        worker.progress.connect(self._on_worker_progress)
        worker.started.connect(self._on_worker_started)
        worker.preview.connect(self._on_worker_preview)

    def _open_project(self) -> Project:
        if self.project is None:
            raise RuntimeError("no project is open")
        return self.project

    def submit_run(self, request: RunRequest, identity_id: int, reference_id: int, until: str | None,
                   row: int | None = None) -> int:
        """Queue a run (``row``: an interrupted job run again); returns the worker's job id."""
        project = self._open_project()
        if row is None:
            row = queue_run(project, request, identity_id, reference_id, until)
        else:
            project.resume_job(row)
        label = "Run all" if until is None else f"Stage: {until}"
        job_id = self.worker.submit(Job(label=label, run=run_job(project, row, request, identity_id, reference_id,
                                                                 until, self.scenes)))
        self._rows[job_id] = row
        return job_id

    def submit_training(self, identity_id: int, row: int | None = None) -> int:
        project = self._open_project()
        if row is None:
            row = queue_training(project, identity_id)
        else:
            project.resume_job(row)
        name = project.identity(identity_id).name
        job_id = self.worker.submit(Job(label=f"Training {name}", kind="train",
                                        run=training_job(project, row, identity_id)))
        self._rows[job_id] = row
        self.training[job_id] = identity_id
        return job_id

    def training_identities(self) -> set[int]:
        return set(self.training.values())

    def drop_queued(self) -> None:
        """On quit: jobs still waiting are marked cancelled (the user chose to quit over them)."""
        for job_id in list(self._rows):
            self._mark_cancelled_if_queued(job_id)

    # ------------------------------------------------------------------ worker signals

    @Slot(int, object)
    def _on_worker_finished(self, job_id: int, outcome) -> None:
        self._rows.pop(job_id, None)
        if self.training.pop(job_id, None) is not None:
            self.training_finished.emit(outcome)
        else:
            self.run_finished.emit(outcome)

    @Slot(int, object)
    def _on_worker_failed(self, job_id: int, failure: JobFailure) -> None:
        self._rows.pop(job_id, None)
        self.failed.emit(self.training.pop(job_id, None) is not None, failure)

    @Slot(int)
    def _on_worker_cancelled(self, job_id: int) -> None:
        self._mark_cancelled_if_queued(job_id)
        self.cancelled.emit(self.training.pop(job_id, None) is not None)

    @Slot(int, str)
    def _on_worker_started(self, job_id: int, label: str) -> None:
        self.started.emit(job_id, label)

    @Slot(int, QImage)
    def _on_worker_preview(self, job_id: int, image: QImage) -> None:
        self.preview.emit(job_id, image)

    @Slot(int, str, int, int, str)
    def _on_worker_progress(self, job_id: int, stage: str, step: int, total: int, message: str) -> None:
        identity_id = self.training.get(job_id)
        if identity_id is not None:
            self.training_progress.emit(identity_id, step / total if total else 0.0, message)
        else:
            self.run_progress.emit(stage, step, total, message)

    def _mark_cancelled_if_queued(self, job_id: int) -> None:
        # A started job marks itself; one cancelled before it started never ran, so its row says so here.
        row = self._rows.pop(job_id, None)
        if row is not None and self.project is not None and self.project.job(row).state == "queued":
            self.project.update_job(row, state="cancelled")
