"""A real Ray cluster on this machine for the cluster tests: a head and worker nodes, each a `ray start`
process group of its own with its own config, models and cache folders (as separate machines would have),
CPU only, with the ``mp_gpu`` custom resource standing in for GPUs. Bound to 127.0.0.1; every process is
gone after the tests (checked)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..shoot import build_shoot

# The clusters here require a token, as the README sets a studio up: the nodes, this process and the commands
# it starts all have it. Ray reads it when it is first imported, so it is set before any test imports Ray.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))

ROOT = Path(__file__).resolve().parents[2]
NODE = Path(__file__).with_name("ray_node.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    home: Path

    @property
    def config(self) -> Path:
        return self.home / "config"


class LocalCluster:
    """``ray start --head`` and ``ray start --address=…`` as separate process groups."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Ray's socket paths must stay short (AF_UNIX): its session folder goes under /tmp.
        self.temp = Path(tempfile.mkdtemp(prefix="mpray"))
        self.port = free_port()
        self.client_port = free_port()
        self.nodes: list[Node] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    def start(self, name: str, slots: int = 1, models: dict[str, Path] | None = None, head: bool = False) -> Node:
        home = self.root / name
        (home / "config").mkdir(parents=True, exist_ok=True)
        if models:
            (home / "config" / "models.json").write_text(json.dumps(
                {"models": {role: {"source": str(path)} for role, path in models.items()}, "device": "cpu"}))
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MEGAPORTRAIT_CONFIG": str(home / "config"),
               "MEGAPORTRAIT_MODELS": str(home / "models"), "MEGAPORTRAIT_CACHE": str(home / "cache"),
               "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1",
               "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # see ray_node.py
               # as the README says for a head: else Ray Client's server fails to start now and then
               "GRPC_ENABLE_FORK_SUPPORT": "0"}
        common = ["--block", "--node-ip-address=127.0.0.1", f"--node-name={name}", "--num-cpus=1",
                  f"--resources={json.dumps({'mp_gpu': slots})}", "--object-store-memory=100000000",
                  f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
        if head:
            args = ["--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                    "--include-dashboard=false", f"--temp-dir={self.temp}"]
        else:
            args = [f"--address={self.address}"]
        log = (self.root / f"{name}.log").open("w")
        process = subprocess.Popen([sys.executable, str(NODE), "start", *args, *common], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, cwd=str(home))
        node = Node(name, process, home)
        self.nodes.append(node)
        self._wait_for(name)
        return node

    def _wait_for(self, name: str, timeout: float = 120) -> None:
        """Until the node is up: the head's client port answers; a worker node is alive in ``ray.nodes()``
        (asked over the connection the tests hold)."""
        import ray

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.nodes[-1].process.poll() is not None:
                raise RuntimeError(f"ray start for {name} exited: {(self.root / f'{name}.log').read_text()[-2000:]}")
            if len(self.nodes) == 1:
                try:
                    socket.create_connection(("127.0.0.1", self.client_port), timeout=1).close()
                    return
                except OSError:
                    pass
            elif name in {n["NodeName"] for n in ray.nodes() if n["Alive"]}:
                return
            time.sleep(0.5)
        raise RuntimeError(f"node {name} did not come up within {timeout} s")

    def kill(self, node: Node) -> None:
        """The node's machine goes away: every process of it at once."""
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()

    def stop(self) -> list[str]:
        """Stop every node: TERM, then KILL what is still there after 15 s. Returns the Ray processes that
        survived even that (none): a process of a node's group, or one naming this cluster's session folder."""
        for node in reversed(self.nodes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, signal.SIGTERM)
        if self._wait_gone(5):
            return []
        for pid in self._ours():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._wait_gone(5)
        left = [f"{pid}: {args[:120]}" for pid, args in self._ours().items()]
        shutil.rmtree(self.temp, ignore_errors=True)
        return left

    def _ours(self) -> dict[int, str]:
        for node in self.nodes:
            node.process.poll()  # reaps our own child, the `ray start`, once it ended
        groups = {node.process.pid for node in self.nodes}
        table = subprocess.run(["ps", "-eo", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
        ours = {}
        for line in table.splitlines():
            fields = line.split(None, 3)
            if len(fields) == 4 and not fields[2].startswith("Z") and \
                    (int(fields[1]) in groups or str(self.temp) in fields[3] or self.address in fields[3]):
                ours[int(fields[0])] = fields[3]
        return ours

    def _wait_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self._ours():
                return True
            time.sleep(0.5)
        return False


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Pack:
    """Two different files for the base model role: the studio's pack, and one a node has instead."""

    studio: Path
    other: Path

    @staticmethod
    def sha(path: Path) -> str:
        import hashlib

        return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Pack:
    import numpy as np
    from safetensors.numpy import save_file

    root = tmp_path_factory.mktemp("pack")
    save_file({"weight": np.arange(16, dtype=np.float32)}, str(root / "base_studio.safetensors"))
    save_file({"weight": np.arange(16, dtype=np.float32) * 2}, str(root / "base_other.safetensors"))
    return Pack(root / "base_studio.safetensors", root / "base_other.safetensors")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory, pack: Pack):
    """The head (the studio's pack) and node-b (another base model), each offering one worker; the tests
    connect to it as the desktop does, through Ray Client, with a token as the README sets a studio up."""
    pytest.importorskip("ray")
    from megaportrait_desktop.core import cluster as ray_cluster

    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start("head", models={"base": pack.studio}, head=True)
        ray_cluster.connect(local.client_address)
        local.start("node-b", models={"base": pack.other})
        yield local
    finally:
        try:
            ray_cluster.disconnect()
        finally:
            left = local.stop()
    assert not left, f"Ray processes left after the tests: {left}"


@pytest.fixture(scope="session")
def shoot(tmp_path_factory: pytest.TempPathFactory, astronaut, grace) -> Path:
    """Three clients (two real people and a retouched set) × four references, as in the batch tests."""
    return build_shoot(tmp_path_factory.mktemp("shoot"), grace, astronaut, references=4)


@pytest.fixture
def project_dir(shoot: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "shoot"
    shutil.copytree(shoot, copy)
    (copy / "project.lock").unlink(missing_ok=True)
    return copy
