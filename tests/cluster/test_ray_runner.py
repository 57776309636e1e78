"""Batches on a real Ray cluster (head + worker nodes on this machine, CPU only, ``mp_gpu`` slots for GPUs):
exactly one output a pair, whatever node leaves, and a node with other models refuses its jobs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pytest

from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import Project, list_outputs, queue, verify
from megaportrait_desktop.project.batch_run import BatchRun
from megaportrait_desktop.project.batches import create_batch

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

from megaportrait_desktop.core.runner_ray import RayRunner  # noqa: E402

from .conftest import ROOT, free_port  # noqa: E402

SETTINGS = RunRequest(identity=("-",), reference="-", crop_size=256).settings()  # quick runs


def _batch(project: Project, settings: dict = SETTINGS, identities: int = 3) -> int:
    new = create_batch(project, [i.id for i in project.identities()[:identities]],
                       [r.id for r in project.references()], settings)
    assert new.jobs == 4 * identities
    return new.batch_id


def _pairs(project: Project) -> Counter:
    return Counter((o.identity_id, o.reference_id) for o in list_outputs(project).items)


def test_a_3x4_batch_on_two_nodes_makes_exactly_twelve_outputs(cluster, project_dir) -> None:
    with Project.open(project_dir) as project:
        _batch(project)
        runner = RayRunner(resource="mp_gpu")
        try:
            summary = BatchRun(project, runner).run()
        finally:
            runner.close()
        assert (summary.done, summary.failed, summary.left) == (12, 0, 0)
        pairs = _pairs(project)
        assert len(pairs) == 12 and set(pairs.values()) == {1}
        jobs = queue.queue_jobs(project)
        assert all(j.state == "done" and j.output_id and j.attempts == 1 for j in jobs)
        assert {j.worker for j in jobs} == {"head·gpu0", "node-b·gpu0"}  # both nodes worked, named by node
        for output in list_outputs(project).items:  # recorded with the desktop's inputs, not a node's copies
            request = project.output(output.id).request
            assert all(not p.startswith("/") and (project_dir / p).is_file() for p in request["identity"])
            assert (project_dir / request["reference"]).is_file()
        assert verify(project, deep=True).ok


def test_a_node_that_leaves_mid_batch_loses_nothing_and_duplicates_nothing(cluster, project_dir) -> None:
    node_c = cluster.start("node-c")  # a third workstation, whose plug is pulled during the batch
    killed: list[int] = []
    try:
        with Project.open(project_dir) as project:
            _batch(project)
            runner = RayRunner(resource="mp_gpu")

            def on_update(update) -> None:
                if update.state == "started" and update.worker.startswith("node-c·") and not killed:
                    killed.append(update.job_id)
                    cluster.kill(node_c)  # every process of that node, while its job runs

            try:
                summary = BatchRun(project, runner, on_update).run()
            finally:
                runner.close()
            assert killed, "node-c never got a job"
            assert (summary.done, summary.failed, summary.left) == (12, 0, 0)
            pairs = _pairs(project)
            assert len(pairs) == 12 and set(pairs.values()) == {1}  # none lost, none duplicated
            victim = project.job(killed[0])
            assert victim.state == "done" and victim.attempts == 2 and not victim.worker.startswith("node-c")
            assert verify(project, deep=True).ok
    finally:
        if node_c.process.poll() is None:
            cluster.kill(node_c)


def test_a_node_with_other_models_refuses_its_jobs_and_the_others_run_them(cluster, project_dir, pack) -> None:
    pinned = {**SETTINGS, "diffusion": {**SETTINGS["diffusion"], "model_sha256": {"base": pack.sha(pack.studio)}}}
    updates = []
    with Project.open(project_dir) as project:
        _batch(project, pinned)
        runner = RayRunner(resource="mp_gpu")
        try:
            summary = BatchRun(project, runner, updates.append).run()
        finally:
            runner.close()
        assert (summary.done, summary.failed, summary.left) == (12, 0, 0)
        assert set(_pairs(project).values()) == {1} and len(_pairs(project)) == 12
        refusals = [u for u in updates if u.state == "queued"]
        assert len(refusals) == 1  # node-b refused once; it got no job with these models again
        (refusal,) = refusals
        assert refusal.worker == "node-b·gpu0"
        assert refusal.message.startswith("Node node-b refuses this job: its base model")
        assert pack.sha(pack.other)[:12] in refusal.message and pack.sha(pack.studio)[:12] in refusal.message
        assert {j.worker for j in queue.queue_jobs(project)} == {"head·gpu0"}


def test_jobs_whose_models_no_node_holds_fail_with_every_nodes_reason(cluster, project_dir) -> None:
    pinned = {**SETTINGS, "diffusion": {**SETTINGS["diffusion"], "model_sha256": {"base": "0" * 64}}}
    with Project.open(project_dir) as project:
        batch_id = _batch(project, pinned, identities=1)
        runner = RayRunner(resource="mp_gpu")
        try:
            summary = BatchRun(project, runner).run()
        finally:
            runner.close()
        assert (summary.done, summary.failed) == (0, 4)
        assert list_outputs(project).total == 0
        for job in queue.queue_jobs(project, batch_id):
            assert job.state == "failed" and job.error_kind == "models"
        last = [j for j in queue.queue_jobs(project, batch_id) if "No node of the cluster" in (j.error or "")]
        assert last and all("node-b" in j.error and "head" in j.error for j in last)


def test_project_batch_cluster_on_the_command_line(cluster, project_dir) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "project", "batch", str(project_dir), "--identities",
                           "Eileen", "--references", "all", "--cluster", cluster.client_address],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done: 4 recorded, 0 failed" in done.stdout
    assert re.search(r"done on (head|node-b)·gpu0", done.stderr)
    with Project.open(project_dir, read_only=True) as project:
        assert list_outputs(project).total == 4 and set(_pairs(project).values()) == {1}


def test_an_address_where_nothing_answers_is_one_line(project_dir) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "main.py"), "project", "batch", str(project_dir), "--identities",
                           "Eileen", "--references", "all", "--cluster", f"127.0.0.1:{free_port()}"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert "Nothing answers at 127.0.0.1:" in done.stderr and "ray start --head" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_the_connection_test_lists_nodes_workers_and_model_agreement(cluster, pack, monkeypatch) -> None:
    from megaportrait_desktop.core.cluster import cluster_report
    from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec, save_settings

    save_settings(ModelSettings(models={"base": ModelSpec(str(pack.studio))}))  # this computer has the studio's pack
    report = cluster_report(cluster.client_address)
    assert [n.name for n in report.nodes] == ["head", "node-b"]
    assert report.resource == "mp_gpu" and report.workers == 2 and all(n.gpus == 0 for n in report.nodes)
    head, node_b = report.nodes
    assert head.agreement(report.desktop_models, report.version) == (True, "same models as this computer")
    agrees, why = node_b.agreement(report.desktop_models, report.version)
    assert not agrees and why.startswith("base model (Stable Diffusion 1.5) differs")
    assert report.agreeing() == [head]


def test_the_head_leaving_mid_batch_leaves_the_rest_queued_for_a_resume(tmp_path, project_dir) -> None:
    from .conftest import LocalCluster

    own = LocalCluster(tmp_path / "own-cluster")  # this test's own head: the shared one stays up
    try:
        own.start("studio-head", head=True)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "3"}
        app = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "project", "batch", str(project_dir),
                                "--identities", "Eileen", "--references", "all", "--cluster", own.client_address],
                               stderr=subprocess.PIPE, text=True, env=env)
        lines = []
        for line in app.stderr:
            lines.append(line)
            if " done on studio-head·gpu0" in line:
                own.kill(own.nodes[0])  # the head goes away after the first result
                break
        lines += app.stderr.readlines()
        assert app.wait(timeout=120) == 1, "".join(lines)
        assert lines[-1].startswith(f"error: Lost the Ray cluster at {own.client_address}")
        assert lines[-1].rstrip().endswith("start the head again and resume.")
    finally:
        left = own.stop()
    assert not left
    with Project.open(project_dir) as project:
        jobs = queue.queue_jobs(project)
        assert 1 <= sum(j.state == "done" for j in jobs) < 4
        assert {j.state for j in jobs} == {"done", "queued"}  # nothing running, nothing failed, nothing lost
        assert all(j.attempts <= 1 for j in jobs)  # the head's leaving cost no job a try
    resumed = subprocess.run([sys.executable, str(ROOT / "main.py"), "project", "batch", str(project_dir), "--resume"],
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    with Project.open(project_dir, read_only=True) as project:
        assert list_outputs(project).total == 4 and set(_pairs(project).values()) == {1}
