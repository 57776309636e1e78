"""What runs on each node of a Ray cluster: one :class:`NodeWorker` actor per GPU, and the node's inventory.

A job reaches a node as its :class:`~.runner.WorkItem` (paths as the desktop knows them) plus its input
files by content hash (``{path: {"sha256", "suffix", "ref"}}``, ``ref`` a Ray object holding the
bytes). The worker writes each file once into this node's cache folder under its hash, runs the job
there with :func:`.runner.execute` (the same function as on the desktop), and hands back a result
that names the desktop's paths again, so the desktop records it as if it had run the job itself.

Models are never shipped: a node runs with its own models folder (the studio's offline model pack).
A job whose request pins other model hashes than this node holds is refused, naming the node and the
model (:func:`.model_hashes.disagreement`); the desktop's runner then sends it elsewhere. Results
hold no node paths for inputs; the models a diffusion run used keep their paths on the node.

Nothing here imports Ray at module level: the runner wraps :class:`NodeWorker` with ``ray.remote``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, cast

from .allocator import keep_freed_memory
from .errors import ErrorKind
from .model_hashes import MODEL_ROLES, disagreement, held_models
from .paths import cache_dir
from .runner import WorkEvent, WorkItem, execute

#: Input files a node has not used for this long are deleted when a worker starts there (client photos
#: do not stay on other machines' disks for ever).
KEEP_INPUTS_S = 7 * 24 * 3600


def cluster_dir() -> Path:
    """This node's cluster cache: ``inputs/`` by hash, ``training/`` per identity."""
    return cache_dir() / "cluster"


class NodeWorker:
    """One GPU's worker on a cluster node (a Ray actor, running one job at a time; :meth:`progress` and
    :meth:`cancel` are answered while a job runs, on the actor's other threads)."""

    def __init__(self) -> None:
        keep_freed_memory()  # as the app and the local workers do (see core.allocator)
        self._engines: dict = {}      # execute()'s cache: the diffusion engine with its models and last LoRA
        self._hashes: dict = {}       # fingerprint cache for this node's models
        self._held: dict[str, str | None] | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._job: int | None = None
        self._cancelled: set[int] = set()
        self._progress: tuple[int | None, float, str] = (None, 0.0, "")
        self._inputs = cluster_dir() / "inputs"
        prune(self._inputs, KEEP_INPUTS_S)

    # ------------------------------------------------------------------ what the runner calls

    def describe(self) -> dict[str, Any]:
        """Where this worker runs: node id, host, IP, GPU ids, process and app version."""
        import ray

        from .. import __version__

        context = ray.get_runtime_context()
        return {"node_id": context.get_node_id(), "host": socket.gethostname(),
                "ip": ray.util.get_node_ip_address(), "gpus": list(context.get_accelerator_ids().get("GPU", [])),
                "pid": os.getpid(), "version": __version__}

    def run(self, item: WorkItem, worker: str, files: dict[str, dict], pins: dict[str, str]) -> WorkEvent:
        """Run one job here: refuse it if this node's models are not the pinned ones, else fetch its inputs
        (those not cached yet), run it and return its last event (a ``done`` event carries the result)."""
        with self._lock:
            self._job = item.job_id
            self._progress = (item.job_id, 0.0, "")
            self._cancel.clear()
            if item.job_id in self._cancelled:
                self._cancelled.discard(item.job_id)
                return WorkEvent(item.job_id, "cancelled", worker)
        try:
            if pins:
                held = self._node_models(refresh=True)
                problem = disagreement(pins, held, node_label(worker))
                if problem:
                    return WorkEvent(item.job_id, "failed", worker, error_kind=str(ErrorKind.MODELS), error=problem,
                                     retryable=True, result={"refused": True})
            local = {path: self._materialise(entry) for path, entry in files.items()}
            here = localise(item, local, cluster_dir() / "training")
            event = execute(here, worker, self._report, self._cancel, self._engines)
            if event.event == "done":
                event = dataclasses.replace(event, result=restore(item, event.result))
            return event
        except Exception as exc:  # noqa: BLE001 - a job that cannot even start here fails like one that ran
            from .errors import classify

            kind = classify(exc)
            return WorkEvent(item.job_id, "failed", worker, error_kind=str(kind),
                             error=f"{type(exc).__name__}: {exc}" if kind is ErrorKind.INTERNAL else str(exc),
                             retryable=kind in (ErrorKind.MEMORY, ErrorKind.INTERNAL, ErrorKind.DISK))
        finally:
            with self._lock:
                self._job = None

    def progress(self) -> tuple[int | None, float, str]:
        """``(job_id, fraction, message)`` of the job running now."""
        return self._progress

    def cancel(self, job_id: int) -> None:
        """Stop ``job_id`` if it runs here, or refuse it when it arrives."""
        with self._lock:
            if self._job == job_id:
                self._cancel.set()
            else:
                self._cancelled.add(job_id)

    # ------------------------------------------------------------------ helpers

    def _report(self, fraction: float, message: str) -> None:
        self._progress = (self._job, fraction, message)

    def _node_models(self, refresh: bool = False) -> dict[str, str | None]:
        if self._held is None or refresh:  # cheap after the first time: hashes are cached by size and time
            self._held = held_models(cache=self._hashes)
        return self._held

    def _materialise(self, entry: dict) -> str:
        """The cached file for ``entry`` (written from its Ray object the first time this node sees it)."""
        sha, suffix = entry["sha256"], entry.get("suffix", "")
        path = self._inputs / sha[:2] / f"{sha}{suffix}"
        if path.is_file():
            os.utime(path)  # used again: kept another week
            return str(path)
        import ray

        data: bytes = cast(bytes, ray.get(entry["ref"]))
        if hashlib.sha256(data).hexdigest() != sha:
            raise OSError(f"An input arrived damaged on this node (SHA-256 is not {sha[:12]}…).")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # another worker of this node may write the same file: same bytes
        return str(path)


def node_label(worker: str) -> str:
    """The node part of a worker name (``"studio-2·gpu1"`` → ``"studio-2"``)."""
    return worker.split("·", 1)[0]


def localise(item: WorkItem, local: dict[str, str], training_root: Path) -> WorkItem:
    """The item with its input paths replaced by this node's cached copies, and its model sources dropped:
    a node runs with its own models (checked by hash), never with paths from another machine."""
    if item.kind == "train":
        training = dict(item.training or {})
        training["photos"] = [local[p] for p in training.get("photos", [])]
        key = hashlib.sha256(str(training.get("work", "")).encode()).hexdigest()[:16]
        training["work"] = str(training_root / key)
        return dataclasses.replace(item, training=training)
    request = dict(item.request)
    request["identity"] = [local[p] for p in request["identity"]]
    request["reference"] = local[request["reference"]]
    if request.get("mask"):
        request["mask"] = local[request["mask"]]
    diffusion = dict(request.get("diffusion") or {})
    if diffusion.get("lora"):
        diffusion["lora"] = local[diffusion["lora"]]
    for role in MODEL_ROLES:
        if diffusion.get(role):
            diffusion[role] = None
    request["diffusion"] = diffusion
    return dataclasses.replace(item, request=request)


def restore(item: WorkItem, result: Any) -> Any:
    """A job's result as the desktop will record it: a run names the desktop's inputs (the cached copies
    were this node's business); a training hands back its LoRA's bytes (the node's path means nothing there)."""
    if item.kind == "train":
        lora = Path(result)
        return {"lora": lora.read_bytes(), "name": lora.name}
    original = item.request
    d = original.get("diffusion") or {}
    diffusion = dataclasses.replace(result.request.diffusion, lora=d.get("lora"),
                                    **{role: d.get(role) for role in MODEL_ROLES})
    request = result.request.replace(identity=tuple(original["identity"]), reference=original["reference"],
                                     mask=original.get("mask"), diffusion=diffusion)
    return dataclasses.replace(result, request=request)


def node_inventory() -> dict[str, Any]:
    """What a node offers, for the connection test: host, app version and its models' hashes by role."""
    from .. import __version__

    try:
        models, problem = held_models(), None
    except Exception as exc:  # noqa: BLE001 - a node whose settings cannot be read is reported, not fatal
        models, problem = {}, str(exc)
    return {"host": socket.gethostname(), "version": __version__, "models": models, "problem": problem}


def prune(folder: Path, older_than_s: float) -> int:
    """Delete cached inputs not used for ``older_than_s`` seconds; returns how many."""
    if not folder.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    gone = 0
    for path in folder.glob("*/*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                gone += 1
        except OSError:
            continue  # another worker of this node took it first
    return gone
