"""Runners: where a batch's jobs run. One interface, a local implementation here (Ray's in :mod:`.runner_ray`).

A job reaches a runner as a :class:`WorkItem` (a plain run request whose inputs are files the
worker only reads) and comes back as :class:`WorkEvent` s: started, progress, done (with the run's
result) or failed (with the kind of failure). A runner never opens the project: the one process
that submits the work records the results.

:class:`LocalRunner` runs one worker process per GPU (each pinned with ``CUDA_VISIBLE_DEVICES``),
or on a machine without one, one worker on a thread of the calling process. Work for an identity
goes preferably to the worker that ran that identity last (its models and LoRA are still loaded).
A worker process that dies is replaced, and its job comes back as a retryable failure.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_for_pipes
from typing import Any, Protocol

from .allocator import keep_freed_memory
from .errors import Cancelled, ErrorKind, MegaPortraitError, classify

#: A job's progress is sent back at most this often (seconds).
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class WorkItem:
    """One job for a worker.

    Attributes
    ----------
    job_id:
        The submitter's handle (the project's jobs-table row); workers only echo it back.
    kind:
        ``"generate"`` (``request`` is a ``RunRequest.to_dict()``) or ``"train"`` (``training``:
        ``photos``, ``params`` and the ``work`` folder for the identity LoRA).
    affinity:
        What warm state the job wants (an identity): it goes to the worker that last ran it, if free.
    key:
        The job's content key: identical requests have the same one.
    """

    job_id: int
    kind: str
    affinity: str
    key: str = ""
    request: dict[str, Any] = field(default_factory=dict)
    until: str | None = None
    training: dict[str, Any] | None = None


@dataclass(frozen=True)
class WorkEvent:
    """What a worker reports: ``started``, ``progress``, ``done`` (``result``), ``failed`` or ``cancelled``."""

    job_id: int
    event: str
    worker: str
    fraction: float = 0.0
    message: str = ""
    result: Any = None
    error_kind: str | None = None
    error: str | None = None
    #: A crash, a dead worker or memory: worth one more try. A bad input fails the same way again.
    retryable: bool = False


class RunnerLost(MegaPortraitError):
    """The runner itself went away (a cluster's head, or the connection to it). The jobs it had are not lost:
    the driver puts them back in the project's queue (:meth:`project.batch_run.BatchRun.abandon`)."""


class Runner(Protocol):
    """Submit, status, cancel, results. ``events`` raises :class:`RunnerLost` when the runner is gone."""

    def workers(self) -> list[str]: ...

    def submit(self, item: WorkItem) -> None: ...

    def pending(self) -> int:
        """Jobs submitted and not finished (queued in the runner or running)."""
        ...

    def cancel(self, job_id: int | None = None) -> None:
        """Cancel one job (queued or running), or every one."""
        ...

    def events(self, timeout: float = 0.1) -> list[WorkEvent]:
        """What happened since the last call (waits up to ``timeout`` for the first event)."""
        ...

    def close(self) -> None: ...


def execute(item: WorkItem, worker: str, report, cancel_event, cache: dict) -> WorkEvent:
    """Run one work item where it is (any worker, any process): the event that ends it.

    ``report(fraction, message)`` sends progress; ``cache`` keeps a worker's diffusion engine (its loaded
    models and the last LoRA) from one job to the next.
    """
    from .progress import CancelToken, Reporter

    token = CancelToken(cancel_event)
    last = [0.0]

    def on_progress(p) -> None:
        now = time.monotonic()
        if now - last[0] >= PROGRESS_EVERY_S:
            last[0] = now
            report(p.fraction, p.message or p.stage)

    try:
        token.check()
        if item.kind == "train":
            from .diffusion.training import TrainingParams

            t = item.training or {}
            engine = _diffusion(cache)
            trained = engine.train_identity(t["photos"], t["work"], TrainingParams(**t["params"]),
                                            Reporter(on_progress, token))
            result: Any = str(trained.lora_path)
        else:
            from .pipeline import run, with_stage_files
            from .request import RunRequest

            request = RunRequest.from_dict(item.request)
            engine = _diffusion(cache) if request.engine == "diffusion" else None
            result = run(request, on_progress=on_progress, cancel=token, until=item.until, diffusion=engine)
            result = with_stage_files(result)  # here, beside its GPU: not in the one process writing the project
        token.check()  # cancelled at the last moment: nothing is reported done
        return WorkEvent(item.job_id, "done", worker, 1.0, result=result)
    except Cancelled:
        return WorkEvent(item.job_id, "cancelled", worker)
    except Exception as exc:  # noqa: BLE001 - a worker reports every failure and goes on with the next job
        kind = classify(exc)
        message = str(exc) or type(exc).__name__
        if kind is ErrorKind.INTERNAL:
            message = f"{type(exc).__name__}: {message}"
        return WorkEvent(item.job_id, "failed", worker, error_kind=str(kind), error=message,
                         retryable=kind in (ErrorKind.MEMORY, ErrorKind.INTERNAL))


def _diffusion(cache: dict):
    if "diffusion" not in cache:
        from .pipeline import diffusion_engine

        cache["diffusion"] = diffusion_engine()
    return cache["diffusion"]


class _EventPipe:
    """A worker process's end of its own events pipe, with a queue's ``put``.

    Each worker process has its own pipe. With one queue shared by every worker, a worker killed while
    it held the queue's write lock left the lock held: the events of every later worker waited for it,
    and the batch hung.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self._lock = threading.Lock()  # the job's progress and its end may be sent from different threads

    def put(self, event: WorkEvent) -> None:
        with self._lock:
            self.connection.send(event)


def _serve(name: str, device: str | None, tasks, events, cancel_event, threads: int = 0) -> None:
    """A worker's loop (in its own process, or on a thread): take items until ``None``.

    ``events``: a queue (a worker thread), or the writing end of the worker process's own pipe.
    ``threads``: the CPU threads this worker process may use (its share of the cores), else all.
    """
    if isinstance(events, Connection):
        events = _EventPipe(events)
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # before anything imports torch in this process
    if threads:
        _share_the_cores(threads)
    keep_freed_memory()
    cache: dict = {}
    while True:
        item = tasks.get()
        if item is None:
            return
        cancel_event.clear()
        events.put(WorkEvent(item.job_id, "started", name))
        ended = execute(item, name, lambda f, m, i=item: events.put(WorkEvent(i.job_id, "progress", name, f, m)),
                        cancel_event, cache)
        events.put(ended)


def _share_the_cores(threads: int) -> None:
    """Keep a worker process to its share of the CPU: each library otherwise starts a thread per core in
    every worker, and the workers' face finding, scoring and image work slow each other down."""
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    import cv2
    import torch

    torch.set_num_threads(threads)
    cv2.setNumThreads(threads)


@dataclass
class _Worker:
    name: str
    device: str | None
    tasks: Any
    cancel: Any
    process: Any = None
    thread: threading.Thread | None = None
    item: WorkItem | None = None
    affinity: str = ""
    #: The reading end of a worker process's events pipe (``None`` for a thread, or once the pipe has ended).
    events: Connection | None = None

    @property
    def alive(self) -> bool:
        if self.process is not None:
            return self.process.is_alive()
        return self.thread is not None and self.thread.is_alive()


class LocalRunner:
    """This computer: a worker process per GPU, worker processes on request, else one in-process worker.

    Parameters
    ----------
    devices:
        GPU indices (``["0", "1"]``): one worker process each, pinned to its GPU.
    processes:
        Without devices: this many CPU worker processes (``0``: one worker thread in this process).
    """

    def __init__(self, devices: list[str] | None = None, processes: int = 0) -> None:
        self._context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited Qt or CUDA
        self._in_process = not devices and processes <= 0
        # This process's own events (cancelled jobs), and a worker thread's; worker processes have a pipe each.
        self._events: queue.Queue[WorkEvent] = queue.Queue()
        self._out: queue.Queue[WorkEvent] = queue.Queue()
        self._pending: deque[WorkItem] = deque()
        self._lock = threading.Lock()
        self._names = itertools.count(1)
        slots = list(devices) if devices else [None] * max(1, processes)
        self._threads = 0 if self._in_process else max(1, (os.cpu_count() or 1) // len(slots))
        self._workers = [self._start(device) for device in slots]
        # The workers' events are read here, not by the caller: a worker that finishes gets its next job at
        # once, while the caller may still be recording the last result.
        self._closing = threading.Event()
        self._pump = threading.Thread(target=self._pump_events, name="runner-events", daemon=True)
        self._pump.start()

    @classmethod
    def for_this_computer(cls) -> LocalRunner:
        """A worker process per CUDA GPU; one in-process worker on a machine without one."""
        return cls(devices=cuda_devices())

    # ------------------------------------------------------------------ Runner

    def workers(self) -> list[str]:
        return [w.name for w in self._workers]

    def submit(self, item: WorkItem) -> None:
        with self._lock:
            self._pending.append(item)
        self._dispatch()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + sum(w.item is not None for w in self._workers)

    def cancel(self, job_id: int | None = None) -> None:
        cancelled = []
        with self._lock:
            for item in list(self._pending):
                if job_id is None or item.job_id == job_id:
                    self._pending.remove(item)
                    cancelled.append(item)
            for worker in self._workers:
                if worker.item is not None and (job_id is None or worker.item.job_id == job_id):
                    worker.cancel.set()
        for item in cancelled:
            self._events.put(WorkEvent(item.job_id, "cancelled", ""))

    def events(self, timeout: float = 0.1) -> list[WorkEvent]:
        out = []
        try:
            out.append(self._out.get(timeout=timeout))
            while True:
                out.append(self._out.get_nowait())
        except queue.Empty:
            pass
        return out

    def close(self) -> None:
        self.cancel()
        self._closing.set()
        self._pump.join(5)
        for worker in self._workers:
            worker.tasks.put(None)
        for worker in self._workers:
            if worker.process is not None:
                worker.process.join(10)
                if worker.process.is_alive():
                    worker.process.kill()
            elif worker.thread is not None:
                worker.thread.join(10)
            if worker.events is not None:
                worker.events.close()

    # ------------------------------------------------------------------ workers

    def worker_pids(self) -> dict[str, int]:
        """Each worker process's id (tests kill one to see it replaced)."""
        return {w.name: w.process.pid for w in self._workers if w.process is not None}

    def _start(self, device: str | None) -> _Worker:
        number = next(self._names)
        name = f"gpu{device}·{number}" if device is not None else f"cpu·{number}"
        if self._in_process:
            worker = _Worker(name, device, queue.Queue(), threading.Event())
            worker.thread = threading.Thread(target=_serve, args=(name, None, worker.tasks, self._events,
                                                                  worker.cancel), name=name, daemon=True)
            worker.thread.start()
            return worker
        receiver, sender = self._context.Pipe(duplex=False)
        worker = _Worker(name, device, self._context.Queue(), self._context.Event(), events=receiver)
        worker.process = self._context.Process(target=_serve, args=(name, device, worker.tasks, sender,
                                                                    worker.cancel, self._threads),
                                               name=name, daemon=True)
        worker.process.start()
        sender.close()  # the worker holds the only writing end, so its death ends the pipe
        return worker

    def _pump_events(self) -> None:
        """Forward the workers' events to :meth:`events`, freeing and re-feeding workers as jobs end."""
        while not self._closing.is_set():
            for event in self._receive(timeout=0.2):
                if event.event in ("done", "failed", "cancelled"):
                    self._free(event.job_id)
                self._out.put(event)
            for lost in self._replace_dead_workers():
                self._out.put(lost)
            self._dispatch()

    def _receive(self, timeout: float) -> list[WorkEvent]:
        """The events that came within ``timeout``: this process's own (and a worker thread's), then each
        worker process's."""
        own: list[WorkEvent] = []
        with contextlib.suppress(queue.Empty):
            while True:
                own.append(self._events.get_nowait())
        if self._in_process:
            if not own:
                with contextlib.suppress(queue.Empty):
                    own.append(self._events.get(timeout=timeout))
            return own
        with self._lock:
            pipes = {w.events: w for w in self._workers if w.events is not None}
        ready = set(wait_for_pipes(list(pipes), timeout=0 if own else timeout))
        for pipe, worker in pipes.items():
            if pipe not in ready:
                continue
            try:
                own.append(pipe.recv())
            except (EOFError, OSError):  # its worker is gone, perhaps in the middle of a message: replaced next
                worker.events = None
                pipe.close()
        return own

    def _free(self, job_id: int) -> None:
        with self._lock:
            for worker in self._workers:
                if worker.item is not None and worker.item.job_id == job_id:
                    worker.affinity = worker.item.affinity
                    worker.item = None

    def _replace_dead_workers(self) -> list[WorkEvent]:
        lost = []
        with self._lock:
            for index, worker in enumerate(self._workers):
                if worker.alive:
                    continue
                if worker.item is not None:
                    lost.append(WorkEvent(worker.item.job_id, "failed", worker.name, error_kind="worker",
                                          error=f"The worker {worker.name} stopped (exit code "
                                                f"{getattr(worker.process, 'exitcode', None)}) while running "
                                                "this job.", retryable=True))
                self._workers[index] = self._start(worker.device)
        return lost

    def _dispatch(self) -> None:
        with self._lock:
            idle = [w for w in self._workers if w.item is None and w.alive]
            # First each idle worker takes the next job of the identity it holds (its LoRA still loaded) ...
            for worker in list(idle):
                item = next((p for p in self._pending if p.affinity and p.affinity == worker.affinity), None)
                if item is not None:
                    self._assign(worker, item)
                    idle.remove(worker)
            # ... then the others take a job no other worker holds, else the first rather than stand idle.
            for worker in idle:
                if not self._pending:
                    return
                held = {w.affinity for w in self._workers if w is not worker and w.affinity}
                self._assign(worker, next((p for p in self._pending if p.affinity not in held), self._pending[0]))

    def _assign(self, worker: _Worker, item: WorkItem) -> None:
        self._pending.remove(item)
        worker.item = item
        worker.affinity = item.affinity  # what it will hold once it has run it
        worker.tasks.put(item)


def cuda_devices() -> list[str]:
    """The CUDA GPUs this process may use, as indices (empty without PyTorch or a GPU)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:
        count = 0
    if visible is not None and visible.strip():
        return [d.strip() for d in visible.split(",")][:count] if count else []
    return [str(i) for i in range(count)]
