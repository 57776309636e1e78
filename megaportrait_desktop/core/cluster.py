"""Connecting to the studio's Ray cluster, and what it offers: nodes, GPUs, and whether their models agree.

The desktop joins the cluster as a Ray Client (``ray://HEAD:10001``; the head opens that port with
``ray start --head``), or, on a machine that is itself a node, by the head's address (``HEAD:6379``).
One process holds one connection: the runner (:mod:`.runner_ray`) and the connection test share it.
Ray is an optional extra (``pip install -e '.[cluster]'``); it is imported only here and in the runner.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from .errors import ErrorKind, MegaPortraitError

#: The custom resource that stands in for a GPU on nodes without one (``ray start --resources='{"mp_gpu": 1}'``).
SLOT_RESOURCE = "mp_gpu"
#: Ray Client's port on the head (``ray start --head`` opens it): ``ray://HEAD:10001``.
CLIENT_PORT = 10001
NAMESPACE = "megaportrait"
#: Connections tried before giving up (see :func:`connect`).
CONNECT_TRIES = 3

log = logging.getLogger("megaportrait.cluster")


class ClusterError(MegaPortraitError):
    """The cluster cannot be reached or offers no worker; the message says what to check."""

    kind = ErrorKind.INPUT


# ---------------------------------------------------------------------------------------------- connecting


def require_ray():
    """The ``ray`` module, or a :class:`ClusterError` saying how to install the cluster extra.

    Ray starts a cluster of its own on this computer when an API is called unconnected (a lost head, say);
    the app never wants that, so it is switched off before Ray is imported.
    """
    os.environ.setdefault("RAY_ENABLE_AUTO_CONNECT", "0")
    try:
        import ray
    except ImportError:
        raise ClusterError("Running on a Ray cluster needs Ray on this computer: pip install -e '.[cluster]' "
                           "(and the same on every node).") from None
    return ray

_connected: str | None = None
#: Runners using the connection now: a different address must wait until they closed.
_users = 0


def normalise_address(address: str) -> str:
    """``host`` → ``ray://host:10001`` (Ray Client); ``ray://host`` gets the port; ``host:port`` is a GCS
    address (this computer is itself a node of the cluster)."""
    address = address.strip()
    if not address:
        raise ClusterError("Give the cluster's address: ray://HEAD:10001, or HEAD:6379 on a machine of the cluster.")
    if address.startswith("ray://"):
        rest = address[len("ray://"):]
        return address if ":" in rest else f"{address}:{CLIENT_PORT}"
    return address if ":" in address else f"ray://{address}:{CLIENT_PORT}"


def connect(address: str, timeout: float = 10.0) -> str:
    """Connect this process to the cluster at ``address`` (again only when it changed); returns the address.

    Raises
    ------
    ClusterError
        When nothing answers there, or Ray refuses the connection (versions differ, ...).
    """
    global _connected
    ray = require_ray()
    address = normalise_address(address)
    if ray.is_initialized() and _connected == address:
        return address
    if _users and _connected:
        raise ClusterError(f"A batch is running on {_connected}; connect to {address} when it has ended.")
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as exc:
        raise ClusterError(f"Nothing answers at {address} ({exc}). Is the head started (ray start --head) and "
                           f"port {port} open in its firewall?") from None
    if ray.is_initialized():
        ray.shutdown()
        _connected = None
    for attempt in range(1, CONNECT_TRIES + 1):
        try:
            ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, log_to_driver=False)
            break
        except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one sentence
            if ray.is_initialized():
                ray.shutdown()
            # The head starts a server process for each Ray Client; now and then that process fails to come up
            # (its gRPC poller dies at start): a new connection gets a new one.
            if attempt < CONNECT_TRIES and "client server failed" in str(exc):
                log.warning("the cluster's client server did not start (try %d); connecting again", attempt)
                continue
            raise ClusterError(f"Could not join the Ray cluster at {address}: {_first_line(exc)}") from None
    _connected = address
    return address


def disconnect() -> None:
    """Leave the cluster (the tests; the app keeps its connection until it quits)."""
    global _connected
    ray = sys.modules.get("ray")
    if ray is None:
        return
    if ray.is_initialized():
        ray.shutdown()
    _connected = None


def use(delta: int) -> None:
    """A runner starts (``+1``) or stops (``-1``) using the connection."""
    global _users
    _users = max(0, _users + delta)


def slot_options(resource: str = "auto") -> tuple[str, dict[str, Any], int]:
    """Which resource a worker takes (``GPU``, ``mp_gpu`` or ``CPU``), its actor options, and how many
    workers the cluster's live nodes offer now."""
    import ray

    totals = ray.cluster_resources()
    if resource == "auto":
        resource = "GPU" if totals.get("GPU", 0) >= 1 else SLOT_RESOURCE if totals.get(SLOT_RESOURCE, 0) >= 1 else "CPU"
    if resource == "GPU":
        return resource, {"num_gpus": 1, "num_cpus": 0}, int(totals.get("GPU", 0))
    if resource == "CPU":
        nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
        return resource, {"num_cpus": 1, "scheduling_strategy": "SPREAD"}, nodes
    return resource, {"resources": {resource: 1}, "num_cpus": 0}, int(totals.get(resource, 0))


def connected() -> str | None:
    """The address this process is connected to (``None``: not connected here)."""
    return _connected


# ---------------------------------------------------------------------------------------------- the connection test


@dataclass(frozen=True)
class NodeReport:
    """One live node: its name (``ray start --node-name``, else its IP), GPUs, the workers it offers, and
    what it answered about itself (app version, its models' hashes by role), or why it did not."""

    node_id: str
    name: str
    address: str
    gpus: int
    workers: int
    cpus: int
    version: str = ""
    models: dict[str, str | None] = field(default_factory=dict)
    problem: str | None = None

    def agreement(self, desktop: dict[str, str | None], version: str) -> tuple[bool, str]:
        """Whether this node runs what this computer would (its models by hash, the app's version), and
        in words: ``(True, "same models")`` or ``(False, "base model (Stable Diffusion 1.5) differs; ...")``."""
        from .model_hashes import MODEL_ROLES
        from .model_settings import ROLE_NAMES

        if self.problem:
            return False, f"did not answer: {self.problem}"
        differences = []
        for role in MODEL_ROLES:
            here, there = desktop.get(role), self.models.get(role)
            if here and there and here != there:
                differences.append(f"{ROLE_NAMES[role]} differs ({there[:12]}… there, {here[:12]}… here)")
            elif here and not there:
                differences.append(f"no {ROLE_NAMES[role]}")
        if self.version and self.version != version:
            differences.append(f"MegaPortrait {self.version} (this computer: {version})")
        if differences:
            return False, "; ".join(differences)
        if not any(desktop.get(role) for role in MODEL_ROLES):
            return True, "classic engine only: this computer has no diffusion models to compare"
        return True, "same models as this computer"


@dataclass(frozen=True)
class ClusterReport:
    """What :func:`cluster_report` found: the live nodes, and this computer's models and version."""

    address: str
    resource: str
    nodes: tuple[NodeReport, ...]
    desktop_models: dict[str, str | None]
    version: str

    @property
    def workers(self) -> int:
        return sum(n.workers for n in self.nodes)

    def agreeing(self) -> list[NodeReport]:
        return [n for n in self.nodes if n.agreement(self.desktop_models, self.version)[0]]


def cluster_report(address: str, timeout: float = 60.0) -> ClusterReport:
    """Connect to ``address`` and ask every live node what it offers (the Settings → Compute test).

    Raises
    ------
    ClusterError
        When the cluster cannot be reached.
    """
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from .. import __version__
    from .model_hashes import held_models
    from .ray_worker import node_inventory

    address = connect(address)
    resource, _, _ = slot_options()
    live = [n for n in ray.nodes() if n.get("Alive")]
    ask = ray.remote(node_inventory)
    refs = {ask.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
            .remote(): n for n in live}
    ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout) if refs else ([], [])
    answers: dict[str, Any] = {}
    for ref in refs:
        node = refs[ref]
        if ref not in ready:
            answers[node["NodeID"]] = {"problem": f"no answer within {timeout:.0f} s"}
            continue
        try:
            answers[node["NodeID"]] = ray.get(ref)
        except Exception as exc:  # noqa: BLE001 - the app missing on that node, say: reported for that node
            answers[node["NodeID"]] = {"problem": next((line.strip() for line in str(exc).splitlines()
                                                       if "Error" in line), str(exc)[:200])}
    nodes = []
    for n in live:
        answer = answers.get(n["NodeID"], {})
        resources = n.get("Resources", {})
        gpus = int(resources.get("GPU", 0))
        workers = gpus if resource == "GPU" else 1 if resource == "CPU" else int(resources.get(resource, 0))
        nodes.append(NodeReport(n["NodeID"], n.get("NodeName") or n.get("NodeManagerAddress", "?"),
                                n.get("NodeManagerAddress", "?"), gpus, workers, int(resources.get("CPU", 0)),
                                answer.get("version", ""), answer.get("models") or {}, answer.get("problem")))
    nodes.sort(key=lambda n: n.name)
    return ClusterReport(address, resource, tuple(nodes), held_models(), __version__)


def _first_line(exc: BaseException) -> str:
    """The telling line of a Ray error (the last one of a server's traceback, else the first)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return (lines[-1] if len(lines) > 1 and "Traceback" in str(exc) else lines[0])[:300]
