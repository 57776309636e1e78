"""Batches on the persistent queue (classic engine, CPU): exactly one output a pair, whatever gets killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.core.runner import LocalRunner, WorkItem
from megaportrait_desktop.project import Project, import_references, list_outputs, queue, verify
from megaportrait_desktop.project.batch_run import BatchRun
from megaportrait_desktop.project.batches import create_batch

from ..shoot import build_shoot

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"
SETTINGS = RunRequest(identity=("-",), reference="-", crop_size=256).settings()  # quick runs


@pytest.fixture(scope="module")
def shoot(tmp_path_factory, astronaut, grace) -> Path:
    """Three clients (two real people and a retouched set) and three references, ready to copy."""
    return build_shoot(tmp_path_factory.mktemp("shoot"), grace, astronaut)


@pytest.fixture
def project_dir(shoot, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "shoot"
    shutil.copytree(shoot, copy)
    (copy / "project.lock").unlink(missing_ok=True)
    return copy


def _batch(project: Project) -> int:
    new = create_batch(project, [i.id for i in project.identities()], [r.id for r in project.references()], SETTINGS)
    assert (new.jobs, new.trainings) == (9, 0)
    return new.batch_id


def _pairs(project: Project) -> Counter:
    return Counter((o.identity_id, o.reference_id) for o in list_outputs(project).items)


def test_a_3x3_batch_makes_exactly_nine_outputs(project_dir) -> None:
    with Project.open(project_dir) as project:
        batch_id = _batch(project)
        runner = LocalRunner()  # this computer without a GPU: one worker in this process
        try:
            summary = BatchRun(project, runner).run()
        finally:
            runner.close()
        assert (summary.done, summary.failed, summary.left) == (9, 0, 0)
        pairs = _pairs(project)
        assert len(pairs) == 9 and set(pairs.values()) == {1}
        assert sorted(queue.outputs_of(project, batch_id)) == sorted(o.id for o in list_outputs(project).items)
        assert all(j.state == "done" and j.output_id and j.attempts == 1 for j in queue.queue_jobs(project))
        assert verify(project, deep=True).ok


@pytest.mark.slow
def test_a_killed_app_resumes_and_still_makes_exactly_nine(project_dir) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    app = subprocess.Popen([sys.executable, str(MAIN), "project", "batch", str(project_dir), "--identities", "all",
                            "--references", "all"], stderr=subprocess.PIPE, text=True, env=env)
    done = 0
    for line in app.stderr:
        done += " done on " in line
        if done == 3:
            break
    os.kill(app.pid, signal.SIGKILL)  # mid-batch: the fourth job is running
    app.wait()
    with Project.open(project_dir, read_only=True) as project:
        assert 3 <= list_outputs(project).total < 9

    resumed = subprocess.run([sys.executable, str(MAIN), "project", "batch", str(project_dir), "--resume"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    with Project.open(project_dir) as project:
        pairs = _pairs(project)
        assert len(pairs) == 9 and set(pairs.values()) == {1}  # none lost, none duplicated
        assert queue.summary(project).done == 9
    check = subprocess.run([sys.executable, str(MAIN), "project", "verify", str(project_dir), "--deep"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert check.returncode == 0 and "Project OK" in check.stdout


def _slow_pair(project: Project, files: Path) -> tuple[int, int]:
    """A batch of one client × (a 4000-pixel reference, a small one): the big one runs long enough for a test
    to kill its worker before it is done, every time."""
    big = files.parent / "ref_big.png"
    if not big.exists():
        Image.open(files / "ref_eileen_mirror.png").resize((4000, 4000), Image.Resampling.BICUBIC).save(big)
    (result,) = import_references(project, [big])
    small = project.references()[0].id
    new = create_batch(project, [project.identities()[0].id], [result.item_id, small], SETTINGS)
    slow = next(j.id for j in queue.queue_jobs(project, new.batch_id) if j.reference_id == result.item_id)
    return new.batch_id, slow


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_its_job_runs_again(project_dir, shoot) -> None:
    with Project.open(project_dir) as project:
        batch_id, slow = _slow_pair(project, shoot.parent / "files")
        runner = LocalRunner(processes=1)
        first_worker = runner.workers()[0]
        killed: list[int] = []

        def on_update(update) -> None:
            if update.state == "started" and update.job_id == slow and not killed:
                killed.append(update.job_id)
                os.kill(runner.worker_pids()[update.worker], signal.SIGKILL)

        try:
            summary = BatchRun(project, runner, on_update).run()
            workers_after = runner.workers()
        finally:
            runner.close()
        assert killed and summary.done == 2 and summary.failed == 0
        assert workers_after != [first_worker]  # replaced
        victim = project.job(slow)
        assert victim.state == "done" and victim.attempts == 2 and victim.worker != first_worker
        assert set(_pairs(project).values()) == {1}


@pytest.mark.slow
def test_a_job_that_fails_twice_is_failed_with_its_reason_and_the_batch_goes_on(project_dir, shoot) -> None:
    with Project.open(project_dir) as project:
        batch_id, slow = _slow_pair(project, shoot.parent / "files")
        runner = LocalRunner(processes=1)

        def on_update(update) -> None:  # the big job's worker dies on both of its tries
            if update.state == "started" and update.job_id == slow:
                os.kill(runner.worker_pids()[update.worker], signal.SIGKILL)

        try:
            summary = BatchRun(project, runner, on_update).run()
        finally:
            runner.close()
        job = project.job(slow)
        assert (job.state, job.attempts, job.error_kind) == ("failed", 2, "worker")
        assert "stopped" in job.error and job.output_id is None
        assert (summary.done, summary.failed) == (1, 1)  # the other job of the batch was made


def test_pause_cancel_retry_and_reorder_the_queue(project_dir) -> None:
    with Project.open(project_dir) as project:
        batch_id = _batch(project)
        jobs = queue.queue_jobs(project, batch_id)
        queue.move(project, jobs[-1].id, -8)  # the last to the front
        assert [j.id for j in queue.queue_jobs(project, batch_id)][0] == jobs[-1].id
        assert queue.ready_jobs(project)[0].id == jobs[-1].id
        queue.set_paused(project, True, batch_id)
        assert queue.ready_jobs(project) == []
        queue.set_paused(project, False, batch_id)
        assert queue.cancel(project, job_ids=[jobs[0].id]) == 1
        runner = LocalRunner()
        try:
            summary = BatchRun(project, runner).run()
        finally:
            runner.close()
        assert (summary.done, summary.cancelled) == (8, 1)
        assert project.job(jobs[0].id).output_id is None
        assert queue.retry_failed(project, batch_id) == 1  # the cancelled one waits again
        runner = LocalRunner()
        try:
            BatchRun(project, runner).run()
        finally:
            runner.close()
        assert queue.summary(project, batch_id).done == 9 and set(_pairs(project).values()) == {1}


def test_jobs_for_an_identity_go_to_the_worker_that_holds_it(project_dir) -> None:
    with Project.open(project_dir) as project:
        def item(job_id: int, identity, reference) -> WorkItem:
            photos = tuple(str(project.path_of(p.path)) for p in project.identity_photos(identity.id))
            request = RunRequest(identity=photos, reference=str(project.path_of(reference.path)), crop_size=256)
            return WorkItem(job_id, "generate", affinity=f"identity-{identity.id}", request=request.to_dict())

        grace, eileen = project.identities()[:2]
        refs = project.references()
        runner = LocalRunner(processes=2)
        try:
            def run_all(items: list[WorkItem]) -> dict[int, str]:
                for one in items:
                    runner.submit(one)
                ran: dict[int, str] = {}
                while len(ran) < len(items):
                    for event in runner.events(1.0):
                        assert event.event not in ("failed", "cancelled"), event.error
                        if event.event == "done":
                            ran[event.job_id] = event.worker
                return ran

            first = run_all([item(1, grace, refs[0]), item(2, eileen, refs[0])])
            assert first[1] != first[2]  # one client each
            # Both workers free again; the next jobs come in the other order: each still goes to its client's worker.
            second = run_all([item(3, eileen, refs[1]), item(4, grace, refs[1])])
        finally:
            runner.close()
        assert second[3] == first[2] and second[4] == first[1]
