"""``python main.py project batch``: a shoot's identities × references as one batch, recorded in the project."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..core.errors import Cancelled
from ..core.progress import CancelToken
from ..core.request import RunRequest
from ..core.runner import RunnerLost
from . import queue
from .batch_run import BatchRun, JobUpdate
from .batches import create_batch
from .errors import ProjectError
from .project import Project


def add_parser(cmds: argparse._SubParsersAction) -> None:
    batch = cmds.add_parser("batch", help="run identities × references as a batch (outputs recorded in the project)")
    batch.add_argument("path")
    batch.add_argument("--identities", help="identity names, comma separated, or 'all'")
    batch.add_argument("--references", help="reference names, comma separated, or 'all'")
    batch.add_argument("--request", help="a run request JSON file: its settings apply to every pair")
    batch.add_argument("--resume", action="store_true",
                       help="run the jobs the project's batches still have waiting (after a pause, quit or crash)")
    batch.add_argument("--workers", type=int,
                       help="worker processes (default: one per GPU; without a GPU, one in this process)")
    batch.add_argument("--cluster", metavar="ADDRESS", help="run on a Ray cluster (ray://host:10001 or host:6379)")


def run_batch(project: Project, args: argparse.Namespace) -> int:
    if args.cluster:  # an address where nothing answers is said before anything is queued
        from ..core.cluster import connect

        connect(args.cluster)
    if not args.resume:
        if not args.identities or not args.references:
            raise ProjectError("Name the identities and the references (--identities A,B|all --references X,Y|all), "
                               "or --resume a batch.")
        settings = _settings(args.request)
        identities = _pick(args.identities, project.identities(), "identity")
        references = _pick(args.references, project.references(), "reference")
        new = create_batch(project, [i.id for i in identities], [r.id for r in references], settings)
        for note in new.skipped:
            print(f"skipped {note}", file=sys.stderr)
        trainings = f" after {new.trainings} training(s)" if new.trainings else ""
        print(f"Batch #{new.batch_id}: {new.jobs} run(s){trainings}", file=sys.stderr)
    else:
        queue.set_paused(project, False)
    total = queue.summary(project).left
    if not total:
        print("Nothing is waiting in the project's batches.", file=sys.stderr)
        return 0
    runner = _runner(args)
    names = _names(project)
    counter = {"done": 0, "failed": 0, "cancelled": 0}

    def show(update: JobUpdate) -> None:
        if update.state in ("done", "failed", "cancelled", "queued", "started"):
            if update.state in counter:
                counter[update.state] += 1
            what = names(update.job_id)
            note = f" (#{update.output_id})" if update.output_id else ""
            reason = f": {update.message}" if update.message and update.state != "started" else ""
            state = "waiting for another try" if update.state == "queued" else update.state
            print(f"[{counter['done']}/{total}] {what} {state} on {update.worker or '-'}{note}{reason}",
                  file=sys.stderr)

    token = CancelToken()
    driver = BatchRun(project, runner, show)
    try:
        driver.run(token)
    except KeyboardInterrupt:
        token.cancel()
        with contextlib.suppress(Cancelled):
            driver.run(token)
        print("Interrupted: the jobs not done wait in the project; run again with --resume.", file=sys.stderr)
        return 130
    except RunnerLost as exc:
        driver.abandon()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        runner.close()
    print(f"Done: {counter['done']} recorded, {counter['failed']} failed, {counter['cancelled']} cancelled.")
    return 0 if counter["failed"] == 0 else 1


def _runner(args: argparse.Namespace):
    if args.cluster:
        from ..core.runner_ray import RayRunner

        return RayRunner(args.cluster)
    from ..core.runner import LocalRunner

    if args.workers:
        return LocalRunner(processes=args.workers)
    return LocalRunner.for_this_computer()


def _settings(path: str | None) -> dict:
    if not path:
        return RunRequest(identity=("-",), reference="-").settings()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProjectError(f"{path}: cannot read the run request ({exc.strerror}).") from None
    return RunRequest.from_json(text).settings()


def _pick(spec: str, items: list, what: str) -> list:
    if spec.strip().lower() == "all":
        return items
    by_name = {item.name: item for item in items}
    chosen = []
    for name in (n.strip() for n in spec.split(",") if n.strip()):
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "none yet"
            raise ProjectError(f"No {what} named '{name}' in this project (there are: {known}).")
        chosen.append(by_name[name])
    return chosen


def _names(project: Project):
    identities = {i.id: i.name for i in project.identities()}
    references = {r.id: r.name for r in project.references()}

    def name(job_id: int) -> str:
        job = project.job(job_id)
        if job.kind == "train":
            return f"training {identities.get(job.identity_id, '?')}"
        return f"{identities.get(job.identity_id, '?')} → {references.get(job.reference_id, '?')}"

    return name
