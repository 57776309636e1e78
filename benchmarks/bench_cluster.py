"""Benchmark the Ray runner against the local runner on the same classic-engine batch: the overhead per job.

The same 3 clients × 4 references (two real people and variants, crop 256, as the batch tests), run

- on this computer: one in-process worker (the app's choice without a GPU), one worker process, two;
- on a Ray cluster started here (``ray start`` on 127.0.0.1, ``mp_gpu`` slots standing in for GPUs): one
  worker (the head), then two (head + a second node), reached through Ray Client (``ray://``, as the app
  does), and with ``--direct`` also as a driver on the head's node (``HEAD:6379``).

Each runner does two batches: the first (cold: workers import the pipeline, nodes fetch every input), then
the same pairs at another seed (warm: inputs cached on the nodes, models in memory). Figures: the time to
start the runner, each batch's wall time, and the steady time per job (first result to last, over n − 1);
the overhead per job is the Ray figure minus the local one with as many worker processes (an in-process
worker shares the interpreter, and its lock, with the driver that records every result).

Prints figures; asserts nothing. Run: ``.venv/bin/python benchmarks/bench_cluster.py [--direct]``
(needs the cluster extra: ``pip install -e '.[cluster]'``).
"""

from __future__ import annotations

import os

# Only for --direct: this process, a driver on the head's node, looks for that node on 127.0.0.1.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
# Ray gives each worker OMP_NUM_THREADS=1 (its CPU share); every run here gets the same, so the difference is
# the runners' own cost, not numpy's and OpenCV's threads fighting over two cores (without this, on this
# 2-core machine, a local worker process takes 0.93 s a job instead of 0.62 s).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from megaportrait_desktop.core.request import RunRequest  # noqa: E402
from megaportrait_desktop.project import Project  # noqa: E402
from megaportrait_desktop.project.batch_run import BatchRun  # noqa: E402
from megaportrait_desktop.project.batches import create_batch  # noqa: E402
from tests import shoot  # noqa: E402


def build_shoot(root: Path) -> Path:
    import matplotlib
    import skimage.data

    grace = np.asarray(Image.open(Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg").convert("RGB"))
    astronaut = skimage.data.astronaut()
    return shoot.build_shoot(root, grace, astronaut, references=4)


def one_batch(project: Project, runner, seed: int) -> tuple[float, float, int]:
    """Wall time, steady time per job, jobs done."""
    settings = RunRequest(identity=("-",), reference="-", crop_size=256, seed=seed).settings()
    create_batch(project, [i.id for i in project.identities()], [r.id for r in project.references()], settings)
    done: list[float] = []
    started = time.perf_counter()
    BatchRun(project, runner, lambda u: done.append(time.perf_counter()) if u.state == "done" else None).run()
    wall = time.perf_counter() - started
    steady = (done[-1] - done[0]) / (len(done) - 1) if len(done) > 1 else float("nan")
    return wall, steady, len(done)


def measure(label: str, shoot: Path, work: Path, make_runner) -> dict:
    copy = work / label.replace(" ", "_").replace("/", "_")
    shutil.copytree(shoot, copy)
    (copy / "project.lock").unlink(missing_ok=True)
    with Project.open(copy) as project:
        t0 = time.perf_counter()
        runner = make_runner()
        start = time.perf_counter() - t0
        try:
            cold = one_batch(project, runner, seed=0)
            warm = one_batch(project, runner, seed=1)
        finally:
            runner.close()
    row = {"label": label, "start": start, "cold": cold, "warm": warm}
    print(f"{label:<34} start {start:5.1f} s | cold batch {cold[0]:5.1f} s ({cold[1]:.2f} s/job steady, {cold[2]} done)"
          f" | warm batch {warm[0]:5.1f} s ({warm[1]:.2f} s/job steady, {warm[2]} done)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direct", action="store_true", help="also as a driver on the head's node (HEAD:6379)")
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          "3 clients × 4 references = 12 jobs a batch, classic engine, crop 256")
    from megaportrait_desktop.core import cluster as ray_cluster
    from megaportrait_desktop.core.runner import LocalRunner
    from megaportrait_desktop.core.runner_ray import RayRunner
    from tests.cluster.conftest import LocalCluster

    with tempfile.TemporaryDirectory(prefix="bench_cluster") as tmp:
        work = Path(tmp)
        os.environ["MEGAPORTRAIT_CONFIG"] = str(work / "desktop-config")
        shoot = build_shoot(work / "shoot")
        rows = [measure("local, 1 worker (in process)", shoot, work, LocalRunner),
                measure("local, 1 worker process", shoot, work, lambda: LocalRunner(processes=1)),
                measure("local, 2 worker processes", shoot, work, lambda: LocalRunner(processes=2))]
        local = LocalCluster(work / "cluster")
        try:
            local.start("head", head=True)
            ray_cluster.connect(local.client_address)
            rows.append(measure("Ray Client, 1 worker (head)", shoot, work, lambda: RayRunner(resource="mp_gpu")))
            local.start("node-b")
            rows.append(measure("Ray Client, 2 workers (2 nodes)", shoot, work, lambda: RayRunner(resource="mp_gpu")))
            if args.direct:
                ray_cluster.disconnect()
                ray_cluster.connect(local.address)
                rows.append(measure("Ray driver on head, 2 workers", shoot, work,
                                    lambda: RayRunner(resource="mp_gpu")))
        finally:
            ray_cluster.disconnect()
            left = local.stop()
        if left:
            print(f"Ray processes left: {left}")
    by = {r["label"]: r for r in rows}
    print("\noverhead of the Ray runner per job (steady time per job, Ray minus local with as many workers):")
    for ray_label, local_label in (("Ray Client, 1 worker (head)", "local, 1 worker process"),
                                   ("Ray Client, 2 workers (2 nodes)", "local, 2 worker processes"),
                                   ("Ray driver on head, 2 workers", "local, 2 worker processes")):
        if ray_label in by:
            for phase in ("cold", "warm"):
                delta = by[ray_label][phase][1] - by[local_label][phase][1]
                print(f"  {ray_label:<34} {phase}: {delta * 1000:+6.0f} ms per job "
                      f"({by[ray_label][phase][1]:.2f} vs {by[local_label][phase][1]:.2f} s)")


if __name__ == "__main__":
    main()
