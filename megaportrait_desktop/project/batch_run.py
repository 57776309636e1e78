"""Driving a runner through a project's queue: submit what is ready, record what comes back.

This runs in the one process that writes the project (the app, or a ``project batch`` command); the
runner's workers only read their inputs. A result is recorded in the same transaction that marks
its job done; a result for a job that is already done (a retry that raced its first try) is
dropped, so retries never duplicate outputs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import Cancelled
from ..core.progress import CancelToken
from ..core.runner import Runner, WorkEvent, WorkItem
from . import queue
from .project import Job, Project

#: A job's progress is written to the project at most this often (seconds).
PROGRESS_WRITE_S = 1.0


@dataclass(frozen=True)
class JobUpdate:
    """What happened to a job, for the window or the terminal."""

    job_id: int
    state: str          # started | progress | done | failed | queued (for another try) | cancelled
    worker: str = ""
    fraction: float = 0.0
    message: str = ""
    output_id: int = 0


class BatchRun:
    """One runner, one project: :meth:`step` until :meth:`finished`."""

    def __init__(self, project: Project, runner: Runner, on_update: Callable[[JobUpdate], None] | None = None) -> None:
        self.project = project
        self.runner = runner
        self.on_update = on_update or (lambda update: None)
        self._submitted: set[int] = set()
        self._withdrawn: set[int] = set()   # taken back (pause, reorder): they wait again, not cancelled
        self._cancelled: set[int] = set()
        self._written: dict[int, float] = {}
        self._started: dict[int, float] = {}
        #: Seconds each finished job took, for the time left.
        self.durations: list[float] = []
        #: Seconds each result took to record (the benchmark's view of this one writing process).
        self.record_seconds: list[float] = []

    # ------------------------------------------------------------------ control

    def in_flight(self) -> int:
        """Jobs handed to the runner and not back yet."""
        return len(self._submitted)

    def finished(self) -> bool:
        return not self._submitted and not queue.ready_jobs(self.project)

    def eta_seconds(self) -> float | None:
        """Time left for the waiting and running jobs, from the finished ones (``None`` before the first)."""
        if not self.durations:
            return None
        per_job = sum(self.durations[-20:]) / len(self.durations[-20:])
        left = queue.summary(self.project).left
        return per_job * left / max(1, len(self.runner.workers()))

    def cancel(self, job_ids: list[int] | None = None) -> None:
        """Cancel jobs (or all): waiting ones at once, running ones as soon as their worker stops."""
        targets = self._submitted if job_ids is None else self._submitted & set(job_ids)
        for job_id in list(targets):
            self._cancelled.add(job_id)
            self.runner.cancel(job_id)
        queue.cancel(self.project, job_ids=[j for j in (job_ids or []) if j not in targets] if job_ids else None)

    def withdraw(self, job_ids: list[int] | None = None) -> None:
        """Take submitted jobs back (a pause): running ones stop, and every one waits in the queue again."""
        for job_id in list(self._submitted if job_ids is None else self._submitted & set(job_ids)):
            self._withdrawn.add(job_id)
            self.runner.cancel(job_id)

    def abandon(self) -> None:
        """The runner went away (:class:`~core.runner.RunnerLost`): every job it had waits in the queue again,
        its try not counted (one the user cancelled meanwhile stays cancelled)."""
        for job_id in list(self._submitted):
            if job_id in self._cancelled:
                queue.cancel(self.project, job_ids=[job_id])
            else:
                queue.wait_again(self.project, job_id)
        self._submitted.clear()
        self._withdrawn.clear()
        self._cancelled.clear()

    # ------------------------------------------------------------------ the loop

    def step(self, timeout: float = 0.2) -> None:
        """Feed every idle worker one ready job, then handle what the workers reported."""
        self._top_up()
        for event in self.runner.events(timeout):
            self._handle(event)

    def run(self, cancel: CancelToken | None = None) -> queue.QueueSummary:
        """Step until nothing is ready or running (Ctrl+C in a terminal: ``cancel``); returns the summary."""
        while not self.finished():
            if cancel is not None and cancel.cancelled:
                self.withdraw()  # every job taken back waits in the queue for the next run
                while self._submitted:
                    for event in self.runner.events(0.2):
                        self._handle(event)
                raise Cancelled()
            self.step()
        return queue.summary(self.project)

    def _top_up(self) -> None:
        # Up to two jobs a worker, so a runner can give a worker the next job of the identity it holds.
        free = 2 * len(self.runner.workers()) - self.runner.pending()
        if free <= 0:
            return
        for job in queue.ready_jobs(self.project, exclude=self._submitted, limit=free):
            self.runner.submit(self._work_item(job))
            self._submitted.add(job.id)

    def _work_item(self, job: Job) -> WorkItem:
        payload = job.payload
        if job.kind == "train":
            return WorkItem(job.id, "train", affinity=f"identity-{job.identity_id}",
                            training=_training(self.project, job.identity_id))
        request = self.project.resolve_request(payload["request"])
        if payload.get("lora_from_identity"):  # trained earlier in this batch: the identity's LoRA now
            lora = self.project.identity(job.identity_id).lora_path
            request["diffusion"] = {**request["diffusion"], "lora": str(self.project.path_of(lora)) if lora else None}
        return WorkItem(job.id, "generate", affinity=f"identity-{job.identity_id}", key=job.key or "",
                        request=request, until=payload.get("until"))

    def _handle(self, event: WorkEvent) -> None:
        job_id = event.job_id
        if event.event == "started":
            queue.start(self.project, job_id, event.worker)
            self._started[job_id] = time.monotonic()
            self.on_update(JobUpdate(job_id, "started", event.worker))
        elif event.event == "progress":
            if time.monotonic() - self._written.get(job_id, 0.0) >= PROGRESS_WRITE_S:
                self._written[job_id] = time.monotonic()
                queue.set_progress(self.project, job_id, event.fraction)
            self.on_update(JobUpdate(job_id, "progress", event.worker, event.fraction, event.message))
        elif event.event == "done":
            self._submitted.discard(job_id)
            began = time.perf_counter()
            output_id = self._record(job_id, event.result)
            self.record_seconds.append(time.perf_counter() - began)
            if job_id in self._started:
                self.durations.append(time.monotonic() - self._started.pop(job_id))
            self.on_update(JobUpdate(job_id, "done", event.worker, 1.0, output_id=output_id))
        elif event.event == "failed":
            self._submitted.discard(job_id)
            state = queue.fail(self.project, job_id, event.error_kind, event.error or "", event.retryable)
            self.on_update(JobUpdate(job_id, state if state == "failed" else "queued", event.worker,
                                     message=event.error or ""))
        elif event.event == "cancelled":
            self._submitted.discard(job_id)
            if job_id in self._withdrawn:
                self._withdrawn.discard(job_id)
                queue.wait_again(self.project, job_id)
                self.on_update(JobUpdate(job_id, "queued", event.worker))
            else:
                self._cancelled.discard(job_id)
                queue.cancel(self.project, job_ids=[job_id])
                self.on_update(JobUpdate(job_id, "cancelled", event.worker))

    def _record(self, job_id: int, result) -> int:
        job = self.project.job(job_id)
        if job.state == "done":
            return job.output_id or 0  # already recorded (a retry raced its first try): never twice
        if job.kind == "train":
            self.project.set_training(job.identity_id, "trained", progress=1.0, lora=Path(result).read_bytes())
            queue.finish(self.project, job_id)
            return 0
        if result.final is None:
            queue.finish(self.project, job_id)
            return 0
        return self.project.record_run(result, job.identity_id, job.reference_id, models=result.models,
                                       job_id=job_id, batch_id=job.batch_id)


def _training(project: Project, identity_id: int) -> dict:
    from ..core.diffusion.training import TrainingParams

    identity = project.identity(identity_id)
    saved = {k: v for k, v in identity.training_params.items() if k in TrainingParams.__dataclass_fields__}
    return {"photos": [str(project.path_of(p.path)) for p in project.identity_photos(identity_id)],
            "params": {**saved, "token": identity.trigger_token},
            "work": str(project.root / "training" / f"identity_{identity_id}")}
