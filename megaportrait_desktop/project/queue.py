"""The persistent queue: a project's batch jobs, in order, with their states, tries and errors.

Every change is a transaction in the project, so the queue survives quitting and crashes: when a
project opens (for writing: no other process can be running its jobs), a batch job left running is
waiting again; one recorded is done in the same transaction that recorded its output, so nothing
recorded runs twice and nothing recorded is lost.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import ProjectError
from .project import Job, Project, job_from_row

#: A job that crashed its worker or ran out of memory gets this many tries in all.
MAX_ATTEMPTS = 2
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class QueueSummary:
    """How far the batches are: jobs by state."""

    queued: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.running + self.done + self.failed + self.cancelled

    @property
    def left(self) -> int:
        return self.queued + self.running


def requeue_interrupted(project: Project) -> int:
    """Batch jobs a dead process left running wait in the queue again (their tries so far kept)."""
    with project.db.write() as tx:
        return tx.execute("""UPDATE jobs SET state = 'queued', progress = 0, worker = NULL, updated = ?
                             WHERE batch_id IS NOT NULL AND state = 'running'""", (time.time(),)).rowcount


def queue_jobs(project: Project, batch_id: int | None = None, states: tuple[str, ...] | None = None) -> list[Job]:
    """Batch jobs in queue order (of one batch, or all)."""
    where, params = ["batch_id IS NOT NULL"], []
    if batch_id is not None:
        where.append("batch_id = ?")
        params.append(batch_id)
    if states:
        where.append(f"state IN ({','.join('?' * len(states))})")
        params.extend(states)
    rows = project.db.query(f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY position, id", tuple(params))
    return [job_from_row(r) for r in rows]


def ready_jobs(project: Project, exclude: set[int] = frozenset(), limit: int = 1) -> list[Job]:
    """The next queued jobs that may start: their batch is not paused and the training they wait for is done."""
    rows = project.db.query(
        """SELECT j.* FROM jobs j JOIN batches b ON b.id = j.batch_id
           LEFT JOIN jobs t ON t.id = j.after_job
           WHERE j.state = 'queued' AND b.paused = 0 AND (j.after_job IS NULL OR t.state = 'done')
           ORDER BY j.position, j.id""")
    return [job for job in map(job_from_row, rows) if job.id not in exclude][:limit]


def start(project: Project, job_id: int, worker: str) -> None:
    """A worker took the job: running, one more try."""
    with project.db.write() as tx:
        tx.execute("""UPDATE jobs SET state = 'running', attempts = attempts + 1, worker = ?, progress = 0,
                      updated = ? WHERE id = ?""", (worker, time.time(), job_id))


def set_progress(project: Project, job_id: int, fraction: float) -> None:
    with project.db.write() as tx:
        tx.execute("UPDATE jobs SET progress = ?, updated = ? WHERE id = ? AND state = 'running'",
                   (fraction, time.time(), job_id))


def finish(project: Project, job_id: int) -> None:
    with project.db.write() as tx:
        tx.execute("UPDATE jobs SET state = 'done', progress = 1, updated = ? WHERE id = ?", (time.time(), job_id))


def fail(project: Project, job_id: int, kind: str | None, message: str, retryable: bool) -> str:
    """A try failed: a retryable failure waits for its next try while it has one; returns the new state."""
    job = project.job(job_id)
    state = "queued" if retryable and job.attempts < MAX_ATTEMPTS else "failed"
    with project.db.write() as tx:
        tx.execute("""UPDATE jobs SET state = ?, error = ?, error_kind = ?, progress = 0, updated = ?
                      WHERE id = ?""", (state, message, kind, time.time(), job_id))
    if state == "failed" and job.kind == "train":  # the runs waiting for it cannot run
        with project.db.write() as tx:
            tx.execute("""UPDATE jobs SET state = 'failed', error = ?, error_kind = ?, updated = ?
                          WHERE after_job = ? AND state = 'queued'""",
                       (f"Its identity's training failed: {message}", kind, time.time(), job_id))
    return state


def wait_again(project: Project, job_id: int) -> None:
    """A job taken back before it started (a pause, a reorder): queued as it was, its try not counted."""
    with project.db.write() as tx:
        tx.execute("""UPDATE jobs SET state = 'queued', progress = 0, worker = NULL,
                      attempts = MAX(0, attempts - (state = 'running')), updated = ? WHERE id = ?""",
                   (time.time(), job_id))


def cancel(project: Project, job_ids: list[int] | None = None, batch_id: int | None = None) -> int:
    """Cancel waiting jobs (the given ones, a batch's, or all); returns how many. Running ones are the
    runner's to stop: the caller cancels them there and calls this when they have stopped."""
    where, params = ["batch_id IS NOT NULL", "state IN ('queued', 'running')"], []
    if job_ids is not None:
        where.append(f"id IN ({','.join('?' * len(job_ids))})")
        params.extend(job_ids)
    if batch_id is not None:
        where.append("batch_id = ?")
        params.append(batch_id)
    with project.db.write() as tx:
        return tx.execute(f"UPDATE jobs SET state = 'cancelled', updated = ? WHERE {' AND '.join(where)}",
                          (time.time(), *params)).rowcount


def retry_failed(project: Project, batch_id: int | None = None) -> int:
    """Failed (and cancelled) jobs wait again, with fresh tries; returns how many."""
    where, params = ["batch_id IS NOT NULL", "state IN ('failed', 'cancelled')"], []
    if batch_id is not None:
        where.append("batch_id = ?")
        params.append(batch_id)
    with project.db.write() as tx:
        return tx.execute(f"""UPDATE jobs SET state = 'queued', attempts = 0, progress = 0, updated = ?
                              WHERE {' AND '.join(where)}""", (time.time(), *params)).rowcount


def set_paused(project: Project, paused: bool, batch_id: int | None = None) -> None:
    """Pause (no new job starts; a running one finishes) or resume a batch, or every batch."""
    with project.db.write() as tx:
        if batch_id is None:
            tx.execute("UPDATE batches SET paused = ?", (int(paused),))
        elif not tx.execute("UPDATE batches SET paused = ? WHERE id = ?", (int(paused), batch_id)).rowcount:
            raise ProjectError(f"Batch {batch_id} does not exist in this project.")


def move(project: Project, job_id: int, steps: int) -> None:
    """Move a waiting job up (``steps < 0``) or down the queue, among the waiting jobs."""
    waiting = queue_jobs(project, states=("queued",))
    ids = [j.id for j in waiting]
    if job_id not in ids:
        raise ProjectError("Only a waiting job can be moved.")
    index = ids.index(job_id)
    target = min(max(index + steps, 0), len(ids) - 1)
    if target == index:
        return
    ids.insert(target, ids.pop(index))
    positions = sorted(j.position for j in waiting)
    with project.db.write() as tx:
        tx.executemany("UPDATE jobs SET position = ? WHERE id = ?", list(zip(positions, ids, strict=True)))


def summary(project: Project, batch_id: int | None = None) -> QueueSummary:
    where, params = ("WHERE batch_id = ?", (batch_id,)) if batch_id is not None else ("WHERE batch_id IS NOT NULL",
                                                                                       ())
    counts = {r["state"]: r["n"] for r in project.db.query(
        f"SELECT state, count(*) AS n FROM jobs {where} GROUP BY state", params)}
    return QueueSummary(*(counts.get(state, 0) for state in ("queued", "running", "done", "failed", "cancelled")))


def outputs_of(project: Project, batch_id: int) -> list[int]:
    """The batch's outputs, best identity score first."""
    rows = project.db.query("""SELECT id FROM outputs WHERE batch_id = ?
                               ORDER BY identity_score IS NULL, identity_score DESC, id""", (batch_id,))
    return [r["id"] for r in rows]
