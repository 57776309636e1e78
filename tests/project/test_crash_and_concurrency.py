"""Crash safety (SIGKILL while recording) and a writer thread beside a reader thread."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from megaportrait_desktop.project import OutputQuery, Project, list_outputs, repair, verify

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import sys, numpy as np
from megaportrait_desktop.project import Project
project = Project.open(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
while True:
    image = rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)
    stages = {"A": image[:48], "B": image[48:]}
    output_id = project.record_output(request={"seed": int(rng.integers(1 << 30))}, engine="classic",
                                      final=image, stages=stages, tags=("crash-test",))
    print(output_id, flush=True)  # only after COMMIT returned
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_sigkill_while_recording_loses_no_committed_output(tmp_path) -> None:
    root = tmp_path / "crashy"
    Project.create(root).close()
    committed: set[int] = set()
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    repairs = 0
    while kills < 24:
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), str(kills)], stdout=subprocess.PIPE,
                                 text=True, env=env)
        first = child.stdout.readline()  # it is recording now
        assert first.strip().isdigit(), first
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(child.pid, signal.SIGKILL)
        rest = child.stdout.read()
        child.wait()
        kills += 1
        committed |= {int(line) for line in (first + rest).split()}

        project = Project.open(root)
        report = verify(project)
        if not report.ok:
            assert not report.missing_files and not report.broken_outputs  # only strays: orphans, .part files
            repairs += 1
            assert repair(project).ok
        present = {o.id for o in list_outputs(project, OutputQuery(page_size=1000)).items}
        total = list_outputs(project, OutputQuery(page_size=1)).total
        assert committed <= present, sorted(committed - present)
        for output_id in committed:
            out = project.output(output_id)
            assert project.path_of(out.final_path).is_file()
            assert all(project.path_of(p).is_file() for p in out.stages.values())
        project.close()
    assert kills >= 20 and len(committed) > 50 and total >= len(committed)
    print(f"{kills} kills, {len(committed)} committed outputs, {repairs} repairs needed")


def test_a_writer_and_a_reader_thread_never_see_database_locked(tmp_path) -> None:
    project = Project.create(tmp_path / "busy")
    errors: list[BaseException] = []
    written: list[int] = []
    done = threading.Event()
    reads = 0

    def writer() -> None:
        rng = np.random.default_rng(0)
        try:
            for i in range(200):
                image = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
                written.append(project.record_output(request={"i": i}, engine="classic", final=image,
                                                     identity_score=float(rng.random())))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        nonlocal reads
        try:
            while not done.is_set():
                page = list_outputs(project, OutputQuery(sort="score", page_size=50))
                for item in page.items[:5]:
                    project.output(item.id)
                reads += 1
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(written) == 200 and reads > 10
    project.close()
    project = Project.open(tmp_path / "busy")
    assert list_outputs(project, OutputQuery(page_size=1)).total == 200
    assert verify(project).ok
    project.close()
