"""Killed exports and imports: what they leave is beside the project (never a client's database in /tmp), and
``verify --repair`` or the next run removes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from megaportrait_desktop.cli import main
from megaportrait_desktop.project import Project
from megaportrait_desktop.project.exchange import export_project

ROOT = Path(__file__).resolve().parents[2]
BIG = 160 << 20  # a stored file big enough that an export or import takes a while


def _kill_when(args: list[str], appears, env: dict[str, str]) -> Path | None:
    """Run the CLI in a child, SIGKILL it as soon as ``appears()`` names a path; returns that path."""
    child = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *args], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    found = None
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline:
        found = appears()
        if found is not None:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.002)
    child.kill()
    child.wait()
    return found


@pytest.fixture
def big_project(tmp_path) -> Path:
    root = tmp_path / "client"
    with Project.create(root) as project:
        project.record_output(request={}, engine="classic", final=np.zeros((16, 16, 3), np.uint8))
        stored = project.store(b"\x01" * BIG, ".img", "photo")
        with project.db.write() as tx:
            project.register(tx, stored)
    return root


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_export_leaves_its_database_copy_beside_the_project_and_repair_removes_it(
        tmp_path, big_project) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(private_tmp)}

    def zip_started():
        return next(iter(tmp_path.glob(".out.zip.part*")), None)

    part = _kill_when(["project", "export", str(big_project), str(tmp_path / "out.zip")], zip_started, env)
    assert part is not None and not (tmp_path / "out.zip").exists()
    # The copy of the client's database is beside the project, not in the temp folder.
    assert list(private_tmp.iterdir()) == []
    (left,) = big_project.glob(".mp-export-*.db")
    assert main(["project", "verify", str(big_project), "--repair"]) == 0
    assert not left.exists() and not list(big_project.glob(".mp-export-*"))
    # The zip's partial file goes with the next export to that folder, and the export works.
    assert part.exists()
    assert main(["project", "export", str(big_project), str(tmp_path / "out.zip")]) == 0
    assert not part.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert not list(big_project.glob(".mp-export-*"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_killed_import_leaves_a_folder_the_next_import_removes(tmp_path, big_project) -> None:
    with Project.open(big_project) as project:
        archive = export_project(project, tmp_path / "big.zip")
    target_parent = tmp_path / "projects"
    target_parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def staging():
        return next(iter(target_parent.glob(".copy.importing-*")), None)

    left = _kill_when(["project", "import", str(archive), str(target_parent / "copy")], staging, env)
    assert left is not None and left.is_dir()
    assert main(["project", "import", str(archive), str(target_parent / "second")]) == 0
    assert not left.exists()
    assert sorted(p.name for p in target_parent.iterdir()) == ["second"]
