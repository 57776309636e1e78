"""A Ray cluster as a batch's runner: one worker per GPU across the studio's workstations.

:class:`RayRunner` implements the same :class:`~.runner.Runner` interface as the local runner, so the
driver (:class:`project.batch_run.BatchRun`) and the app do not know the difference:

- **One actor per GPU** (``num_gpus=1``), each a :class:`.ray_worker.NodeWorker` that keeps its models
  and the last client's LoRA loaded. On a cluster without GPUs, nodes started with
  ``--resources='{"mp_gpu": N}'`` offer N workers each (a stand-in for GPUs, used by the tests); with
  neither, one CPU worker per node.
- **Identity affinity**: a client's next job goes to the worker that ran that client last.
- **Inputs by content hash** through Ray's object store: each photo, reference, mask and LoRA is put
  once (keyed by its SHA-256) and fetched once per node, which keeps it in its cache folder.
- **Models are not shipped**: each node uses its own models folder. A diffusion request is pinned to
  this computer's models by hash (``model_sha256``) unless it names its own; a node holding others
  refuses the job with a message naming the node and the model, and gets no more jobs with those pins.
- **Faults**: an actor whose process or node dies is restarted by Ray (``max_restarts``), elsewhere if
  its node is gone and a GPU is free; its job comes back as a retryable failure, exactly like a dead
  local worker, and :class:`~project.batch_run.BatchRun` runs it again (and never records a job twice).
- **Results** (``RunResult``) come back pickled through Ray; only this process writes the project.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from . import cluster
from .cluster import SLOT_RESOURCE, ClusterError, connect, slot_options
from .errors import ErrorKind
from .runner import PROGRESS_EVERY_S, RunnerLost, WorkEvent, WorkItem

log = logging.getLogger("megaportrait.cluster")

#: How often the runner looks for GPUs that joined the cluster, and asks a restarting worker if it is back.
GROWTH_CHECK_S = 10.0
PROBE_AGAIN_S = 1.0
#: How long jobs that every ready worker's node refused wait for a worker still starting. A worker whose
#: node has just left is still counted by the cluster and never starts: waiting for it held a batch forever.
START_WAIT_S = 30.0


# ---------------------------------------------------------------------------------------------- the runner


@dataclass
class _Slot:
    """One worker actor, as the runner tracks it."""

    number: int
    handle: Any
    state: str = "starting"               # starting | ready | down
    since: float = field(default_factory=time.monotonic)  # when it was asked for
    name: str = ""
    node_id: str = ""
    probe: Any = None                     # describe() in flight
    probe_at: float = 0.0
    item: WorkItem | None = None
    run: Any = None                       # run() in flight
    poll: Any = None                      # progress() in flight
    poll_at: float = 0.0
    last_progress: tuple = ()
    affinity: str = ""
    deaths: int = 0


@dataclass
class _Shipment:
    files: dict[str, dict]
    pins: dict[str, str] = field(default_factory=dict)


class RayRunner:
    """The studio's cluster (see the module docstring).

    Parameters
    ----------
    address:
        ``ray://HEAD:10001`` (or ``HEAD``), or ``HEAD:6379`` when this computer is a node itself;
        ``None`` uses the connection this process already has (``ray.init`` called elsewhere).
    resource:
        ``"auto"`` (GPUs, else ``mp_gpu`` slots, else one CPU worker per node), ``"GPU"``, ``"CPU"``
        or the name of a custom resource.
    max_restarts:
        How often Ray restarts a worker whose process or node died before the runner starts a new one.
    start_timeout:
        Seconds to wait for the first worker to answer.
    """

    def __init__(self, address: str | None = None, *, resource: str = "auto", max_restarts: int = 3,
                 start_timeout: float = 120.0) -> None:
        ray = cluster.require_ray()
        from .ray_worker import NodeWorker

        self.address = connect(address) if address else cluster.connected() or "this process's Ray"
        self.resource, options, count = slot_options(resource)
        if count < 1:
            raise ClusterError(f"The Ray cluster at {self.address} offers no worker: start its machines with "
                               f"`ray start` (GPU machines offer one worker per GPU; without a GPU add "
                               f"--resources='{{\"{SLOT_RESOURCE}\": 1}}').")
        self._actor = ray.remote(NodeWorker).options(max_restarts=max_restarts, max_task_retries=0,
                                                     max_concurrency=4, **options)
        self._lock = threading.RLock()
        self._numbers = itertools.count(1)
        self._pending: deque[WorkItem] = deque()
        self._shipments: dict[int, _Shipment] = {}
        self._local: list[WorkEvent] = []
        self._cancelling: set[int] = set()
        self._refused: dict[str, dict[tuple, str]] = {}     # node id → pins → the node's message
        self._objects: dict[str, Any] = {}                  # sha256 → ObjectRef of the bytes
        self._hashes: dict[tuple, str] = {}                 # (path, size, mtime) → sha256
        self._model_hashes: dict = {}
        self._desktop_pins: dict[str, dict[str, str]] = {}
        self._node_names: dict[str, str] = {}
        self._grown_at = time.monotonic()
        self._slots = [self._new_slot() for _ in range(count)]
        cluster.use(+1)
        try:
            self._await_first(start_timeout)
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ Runner

    def workers(self) -> list[str]:
        with self._lock:
            return [s.name or f"starting·{s.number}" for s in self._slots]

    def submit(self, item: WorkItem) -> None:
        try:
            with self._connection():
                item, shipment = self._ship(item)
        except RunnerLost:
            raise
        except OSError as exc:  # an input that cannot be read here fails like a bad input on a worker
            with self._lock:
                self._local.append(WorkEvent(item.job_id, "failed", "", error_kind=str(ErrorKind.INPUT),
                                             error=f"Cannot read {exc.filename or 'an input'}: {exc.strerror or exc}."))
            return
        with self._lock:
            self._shipments[item.job_id] = shipment
            self._pending.append(item)
            self._local += self._dispatch()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending) + sum(s.item is not None for s in self._slots)

    def cancel(self, job_id: int | None = None) -> None:
        with self._lock:
            for item in list(self._pending):
                if job_id is None or item.job_id == job_id:
                    self._pending.remove(item)
                    self._shipments.pop(item.job_id, None)
                    self._local.append(WorkEvent(item.job_id, "cancelled", ""))
            with self._connection():
                for slot in self._slots:
                    if slot.item is not None and (job_id is None or slot.item.job_id == job_id):
                        self._cancelling.add(slot.item.job_id)
                        slot.handle.cancel.remote(slot.item.job_id)

    def events(self, timeout: float = 0.1) -> list[WorkEvent]:
        import ray

        with self._connection():
            with self._lock:
                out, self._local = self._local, []
                self._arm()
                watched = self._watched()
            if watched:
                ready, _ = ray.wait(list(watched), num_returns=1, timeout=0 if out else timeout)
                if ready:
                    ready, _ = ray.wait(list(watched), num_returns=len(watched), timeout=0)
                for ref in ready:
                    out += self._on_ready(ref, *watched[ref])
            elif not out:
                time.sleep(timeout)
            with self._lock:
                out += self._dispatch()
                out += self._local
                self._local = []
                if not self._pending and not any(s.item is not None for s in self._slots):
                    self._objects.clear()  # idle: the inputs' objects may go (each node keeps its copies on disk)
        return out

    def close(self) -> None:
        import ray

        with self._lock:
            if ray.is_initialized():
                with contextlib.suppress(Exception):  # the cluster went away meanwhile
                    self.cancel()
                for slot in self._slots:
                    with contextlib.suppress(Exception):  # a worker that is gone already
                        ray.kill(slot.handle, no_restart=True)
            if self._slots:
                cluster.use(-1)
            self._slots = []
            self._pending.clear()
            self._objects.clear()

    @contextlib.contextmanager
    def _connection(self):
        """Ray calls on a connection that may be gone: :class:`RunnerLost` (once Ray Client gave up
        reconnecting, about 30 s after the head went away) instead of whatever Ray raises."""
        import ray

        if not ray.is_initialized():
            raise RunnerLost(self._lost("the connection is closed"))
        try:
            yield
        except ConnectionError as exc:
            raise RunnerLost(self._lost(_first_line(exc))) from None

    def _lost(self, why: str) -> str:
        return (f"Lost the Ray cluster at {self.address} ({why}). The jobs not done wait in the project's queue: "
                "start the head again and resume.")

    # ------------------------------------------------------------------ inputs

    def _ship(self, item: WorkItem) -> tuple[WorkItem, _Shipment]:
        """Put the item's input files in the object store (once per content) and pin its models: the item
        as sent (a diffusion request pinned to this computer's models) and what travels with it."""
        files: dict[str, dict] = {}
        if item.kind == "train":
            for path in (item.training or {}).get("photos", []):
                files[path] = self._put(path)
            return item, _Shipment(files, self._pins_for_training())
        request = dict(item.request)
        for path in [*request["identity"], request["reference"], request.get("mask")]:
            if path:
                files[path] = self._put(path)
        diffusion = dict(request.get("diffusion") or {})
        if diffusion.get("lora"):
            files[diffusion["lora"]] = self._put(diffusion["lora"])
        pins = {k: v for k, v in (diffusion.get("model_sha256") or {}).items() if k != "lora"}
        if request.get("engine") == "diffusion" and not pins:
            pins = self._desktop_pins_for(diffusion)
            if pins:  # the node's engine checks them again when it loads its models
                request["diffusion"] = {**diffusion, "model_sha256": dict(pins)}
                item = dataclasses.replace(item, request=request)
        return item, _Shipment(files, pins)

    def _put(self, path: str) -> dict:
        import ray

        file = Path(path)
        stat = file.stat()
        key = (str(file), stat.st_size, stat.st_mtime_ns)
        sha = self._hashes.get(key)
        data = None
        if sha is None:
            data = file.read_bytes()
            sha = self._hashes[key] = hashlib.sha256(data).hexdigest()
        if sha not in self._objects:
            self._objects[sha] = ray.put(data if data is not None else file.read_bytes())
        return {"sha256": sha, "suffix": file.suffix.lower(), "ref": self._objects[sha]}

    def _desktop_pins_for(self, diffusion: dict) -> dict[str, str]:
        from .model_hashes import request_pins

        key = repr(sorted((k, v) for k, v in diffusion.items() if isinstance(v, str | None)))
        if key not in self._desktop_pins:
            self._desktop_pins[key] = request_pins(diffusion, cache=self._model_hashes)
        return self._desktop_pins[key]

    def _pins_for_training(self) -> dict[str, str]:
        pins = self._desktop_pins_for({})
        return {"base": pins["base"]} if "base" in pins else {}

    # ------------------------------------------------------------------ workers

    def _new_slot(self) -> _Slot:
        slot = _Slot(next(self._numbers), self._actor.remote())
        slot.probe = slot.handle.describe.remote()
        return slot

    def _await_first(self, timeout: float) -> None:
        """Wait until one worker answers; a worker that cannot start at all (the app missing on a node) is
        an error the user sees now rather than a batch that never moves."""
        import ray

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if any(s.state == "ready" for s in self._slots):
                    return
                self._arm()
                probes = {s.probe: s for s in self._slots if s.probe is not None}
            if not probes:
                time.sleep(PROBE_AGAIN_S)
                continue
            ready, _ = ray.wait(list(probes), num_returns=1, timeout=min(1.0, max(0.0, deadline - time.monotonic())))
            for ref in ready:
                with self._lock:
                    failure = self._on_probe(probes[ref], ref)
                if failure is not None:
                    raise ClusterError(f"The cluster's workers cannot start: {failure} Install the same "
                                       "MegaPortrait version with its [cluster] extra on every node.")
        raise ClusterError(f"No worker of the cluster at {self.address} answered within {timeout:.0f} s; "
                           "check `ray status` on the head.")

    def _arm(self) -> None:
        """Ask busy workers for progress, restarting ones whether they are back, the cluster for new GPUs."""
        now = time.monotonic()
        for slot in self._slots:
            if slot.item is not None and slot.poll is None and now >= slot.poll_at and slot.state == "ready":
                slot.poll = slot.handle.progress.remote()
            if slot.state != "ready" and slot.probe is None and now >= slot.probe_at:
                slot.probe = slot.handle.describe.remote()
        if now - self._grown_at >= GROWTH_CHECK_S:
            self._grown_at = now
            try:
                _, _, count = slot_options(self.resource)
            except Exception:  # noqa: BLE001 - the head is briefly unreachable: look again later
                count = 0
            for _ in range(count - len(self._slots)):
                self._slots.append(self._new_slot())
                log.info("a GPU joined the cluster: %d workers", len(self._slots))

    def _watched(self) -> dict[Any, tuple[_Slot, str]]:
        watched = {}
        for slot in self._slots:
            for what in ("run", "poll", "probe"):
                ref = getattr(slot, what)
                if ref is not None:
                    watched[ref] = (slot, what)
        return watched

    def _on_ready(self, ref, slot: _Slot, what: str) -> list[WorkEvent]:
        with self._lock:
            if what == "probe":
                self._on_probe(slot, ref)
                return []
            if what == "poll":
                return self._on_poll(slot, ref)
            return self._on_run(slot, ref)

    def _on_probe(self, slot: _Slot, ref) -> str | None:
        """A worker answered (ready now) or did not (again later; a new one if Ray gave it up)."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayError

        slot.probe = None
        try:
            info: dict = cast(dict, ray.get(ref))
        except ActorUnavailableError:  # restarting, or its node is briefly unreachable
            slot.probe_at = time.monotonic() + PROBE_AGAIN_S
            return None
        except ActorDiedError as exc:  # out of restarts, or it could not start
            slot.deaths += 1
            slot.state, slot.name = "down", ""
            cause = _first_line(exc)
            if "ModuleNotFoundError" in str(exc) or "ImportError" in str(exc):
                return next((line.strip() for line in str(exc).splitlines() if "Error:" in line), cause)
            log.warning("worker %d is gone (%s); starting another", slot.number, cause)
            slot.handle = self._actor.remote()
            slot.probe_at = time.monotonic()
            return None
        except RayError as exc:
            slot.state = "down"
            slot.probe_at = time.monotonic() + PROBE_AGAIN_S
            return _first_line(exc)
        slot.node_id = info["node_id"]
        slot.name = self._name(slot, info)
        slot.state = "ready"
        return None

    def _on_poll(self, slot: _Slot, ref) -> list[WorkEvent]:
        import ray
        from ray.exceptions import RayError

        slot.poll = None
        slot.poll_at = time.monotonic() + PROGRESS_EVERY_S
        try:
            job_id, fraction, message = ray.get(ref)
        except RayError:
            return []  # the run itself reports what happened to the worker
        if slot.item is None or job_id != slot.item.job_id or (fraction, message) == slot.last_progress:
            return []
        slot.last_progress = (fraction, message)
        return [WorkEvent(job_id, "progress", slot.name, fraction, message)]

    def _on_run(self, slot: _Slot, ref) -> list[WorkEvent]:
        import ray
        from ray.exceptions import RayActorError, RayError

        item = slot.item
        assert item is not None
        slot.run, slot.item, slot.poll = None, None, None
        shipment = self._shipments.pop(item.job_id, _Shipment({}))
        try:
            event: WorkEvent = ray.get(ref)
        except RayActorError as exc:
            slot.state, slot.probe_at = "down", time.monotonic()
            slot.deaths += 1
            if item.job_id in self._cancelling:
                self._cancelling.discard(item.job_id)
                return [WorkEvent(item.job_id, "cancelled", slot.name)]
            return [WorkEvent(item.job_id, "failed", slot.name, error_kind="worker",
                              error=f"The worker {slot.name} stopped while running this job (its node left the "
                                    f"cluster or its process died): {_first_line(exc)}", retryable=True)]
        except RayError as exc:  # the result was lost on the way (its node went down before it reached us)
            return [WorkEvent(item.job_id, "failed", slot.name, error_kind="worker",
                              error=f"The result from {slot.name} was lost: {_first_line(exc)}", retryable=True)]
        self._cancelling.discard(item.job_id)
        slot.affinity = item.affinity
        if event.event == "failed" and isinstance(event.result, dict) and event.result.get("refused"):
            self._refused.setdefault(slot.node_id, {})[_key(shipment.pins)] = event.error or ""
            log.warning("%s", event.error)
            event = dataclasses.replace(event, result=None)
        elif event.event == "done" and item.kind == "train":
            event = dataclasses.replace(event, result=_keep_lora(item, event.result))
        return [dataclasses.replace(event, worker=slot.name)]

    def _name(self, slot: _Slot, info: dict) -> str:
        """``node·gpuN``: the node's name (``ray start --node-name``, else its IP) and the GPU's index there."""
        import ray

        if info["node_id"] not in self._node_names:
            self._node_names.update({n["NodeID"]: n.get("NodeName") or n.get("NodeManagerAddress") or "?"
                                     for n in ray.nodes()})
        node = self._node_names.get(info["node_id"], info.get("ip") or "?")
        if info.get("gpus"):
            return f"{node}·gpu{info['gpus'][0]}"
        taken = {s.name for s in self._slots if s is not slot and s.node_id == info["node_id"]}
        kind = "cpu" if self.resource == "CPU" else "gpu"
        return next(f"{node}·{kind}{k}" for k in itertools.count() if f"{node}·{kind}{k}" not in taken)

    # ------------------------------------------------------------------ dispatch

    def _refuses(self, slot: _Slot, item: WorkItem) -> bool:
        pins = self._shipments.get(item.job_id, _Shipment({})).pins
        return bool(pins) and _key(pins) in self._refused.get(slot.node_id, {})

    def _dispatch(self) -> list[WorkEvent]:
        """Give each idle worker a job (its client's, else one no busy worker's client, else the first it
        may run); fail the jobs that every worker's node has refused."""
        out = []
        with self._lock:
            for slot in [s for s in self._slots if s.state == "ready" and s.item is None]:
                candidates = [p for p in self._pending if not self._refuses(slot, p)]
                if not candidates:
                    continue
                item = next((p for p in candidates if p.affinity == slot.affinity), None)
                if item is None:
                    held = {s.affinity for s in self._slots if s is not slot and s.affinity}
                    item = next((p for p in candidates if p.affinity not in held), candidates[0])
                self._pending.remove(item)
                shipment = self._shipments[item.job_id]
                slot.item, slot.last_progress, slot.poll_at = item, (), time.monotonic() + PROGRESS_EVERY_S
                slot.run = slot.handle.run.remote(item, slot.name, shipment.files, shipment.pins)
                out.append(WorkEvent(item.job_id, "started", slot.name))
            ready = [s for s in self._slots if s.state == "ready"]
            now = time.monotonic()
            if ready and not any(s.state == "starting" and now - s.since < START_WAIT_S for s in self._slots):
                for item in list(self._pending):
                    if all(self._refuses(s, item) for s in ready):
                        self._pending.remove(item)
                        pins = _key(self._shipments.pop(item.job_id).pins)
                        reasons = sorted({self._refused[s.node_id][pins] for s in ready})
                        out.append(WorkEvent(item.job_id, "failed", "", error_kind=str(ErrorKind.MODELS),
                                             error="No node of the cluster holds this job's models. "
                                                   + " ".join(reasons)))
        return out


def _key(pins: dict[str, str]) -> tuple:
    return tuple(sorted(pins.items()))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _keep_lora(item: WorkItem, result: dict) -> str:
    """A LoRA trained on a node, written where a local training would have written it."""
    work = Path((item.training or {})["work"])
    work.mkdir(parents=True, exist_ok=True)
    path = work / Path(result["name"]).name
    path.write_bytes(result["lora"])
    return str(path)
