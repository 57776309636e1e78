"""One writer at a time, and nothing another program does to the project's files loses a commit.

The first test is issue 13's item 1 without a display: a file dialog that opens and closes
``project.db`` drops every POSIX lock SQLite holds on it in that process; another program that then
opened and closed the project used to delete the live ``-wal``/``-shm`` files, and the next commits
vanished with the process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from megaportrait_desktop.project import OutputQuery, Project, ProjectError, list_outputs, verify
from megaportrait_desktop.project.errors import ProjectBusyError
from megaportrait_desktop.project.lock import held_elsewhere, read_holder

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"

# The app's side: holds the project open through the project code, as the window does, and does what a
# file dialog does (open and close project.db) before the next write; prints each committed id.
HOLDER = r"""
import sys, numpy as np
from megaportrait_desktop.project import Project
project = Project.open(sys.argv[1])
first = project.create_identity("before the dialog")
print("identity", first, flush=True)
with open(project.root / "project.db", "rb") as fh:  # a file dialog sniffing the file type
    fh.read(64)
print("dialog closed", flush=True)
sys.stdin.readline()  # the other program opens and closes the project meanwhile
second = project.create_identity("after the dialog")
print("identity", second, flush=True)
image = np.full((64, 80, 3), 90, np.uint8)
output = project.record_output(request={"after": True}, engine="classic", final=image, stages={"A": image})
print("output", output, flush=True)
sys.stdin.readline()  # killed here
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(MAIN), *args], capture_output=True, text=True, env=_env(),
                          timeout=120)


def _own_locks(pid: int, path: Path) -> list[str]:
    inode = path.stat().st_ino
    held = []
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "->":
            fields = fields[1:]
        if fields[4] == str(pid) and int(fields[5].split(":")[2]) == inode:
            held.append(fields[1])
    return held


@pytest.mark.skipif(sys.platform != "linux", reason="POSIX lock semantics and /proc/locks")
def test_a_file_dialog_and_another_program_lose_no_committed_change(tmp_path) -> None:
    root = tmp_path / "client shoot"
    Project.create(root).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(root)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    committed: list[str] = []
    try:
        committed.append(holder.stdout.readline().strip())
        assert holder.stdout.readline().strip() == "dialog closed"

        # What the dialog's close did: SQLite's own lock on project.db is gone from this process.
        assert not [kind for kind in _own_locks(holder.pid, root / "project.db") if kind == "POSIX"]

        # Another program opens and closes the project: our CLI, and a plain SQLite client.
        info = _cli("project", "info", str(root))
        assert info.returncode == 0, info.stderr
        assert "before the dialog" in info.stdout
        con = sqlite3.connect(root / "project.db")
        assert con.execute("SELECT count(*) FROM identities").fetchone()[0] == 1
        con.close()

        holder.stdin.write("\n")
        holder.stdin.flush()
        committed += [holder.stdout.readline().strip(), holder.stdout.readline().strip()]
        assert committed[1].startswith("identity") and committed[2].startswith("output"), committed
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()

    with Project.open(root) as project:
        names = {i.name for i in project.identities()}
        assert names == {"before the dialog", "after the dialog"}
        outputs = list_outputs(project, OutputQuery()).items
        assert [o.id for o in outputs] == [int(committed[2].split()[1])]
        assert outputs[0].request == {"after": True} and set(outputs[0].stages) == {"A"}
    check = _cli("project", "verify", str(root), "--deep")
    assert check.returncode == 0 and "Project OK" in check.stdout, check.stdout + check.stderr


def test_a_second_writer_is_refused_and_told_who_has_the_project(tmp_path, photo_files) -> None:
    root = tmp_path / "studio"
    project = Project.create(root, program="MegaPortrait Desktop")
    try:
        # Another process that wants to write: one clear line, exit 2, nothing changed.
        refused = _cli("project", "import-reference", str(root), str(photo_files["reference"]))
        assert refused.returncode == 2
        line = refused.stderr.strip()
        assert "MegaPortrait Desktop" in line and f"process {os.getpid()}" in line and "\n" not in line
        assert project.references() == []

        # In this process too: a second window on the same project.
        with pytest.raises(ProjectBusyError, match="MegaPortrait Desktop"):
            Project.open(root)
        assert read_holder(root).pid == os.getpid()
    finally:
        project.close()
    assert not held_elsewhere(root)
    with Project.open(root) as again:  # free once the first one closed
        assert again.references() == []


def test_reading_commands_work_while_the_project_is_open_for_writing(tmp_path) -> None:
    root = tmp_path / "studio"
    project = Project.create(root, program="MegaPortrait Desktop")
    try:
        image = np.full((40, 48, 3), 128, np.uint8)
        output_id = project.record_output(request={"a": 1}, engine="classic", final=image, identity_score=0.5)
        listed = _cli("project", "list", str(root), "--json")
        assert listed.returncode == 0 and f'"id": {output_id}' in listed.stdout, listed.stderr
        exported = _cli("project", "export", str(root), str(tmp_path / "out.png"), "--output", str(output_id))
        assert exported.returncode == 0 and (tmp_path / "out.png").is_file(), exported.stderr
        zipped = _cli("project", "export", str(root), str(tmp_path / "copy.zip"))
        assert zipped.returncode == 0, zipped.stderr
        checked = _cli("project", "verify", str(root), "--deep")
        assert checked.returncode == 0 and "Project OK" in checked.stdout, checked.stderr
        sheet = _cli("project", "contact-sheet", str(root), str(tmp_path / "sheet.png"))
        assert sheet.returncode == 0 and (tmp_path / "sheet.png").is_file(), sheet.stderr
        repair = _cli("project", "verify", str(root), "--repair")  # a repair writes: refused, says why
        assert repair.returncode == 2 and "process" in repair.stderr
        # The writer carries on after all of them.
        project.record_output(request={"a": 2}, engine="classic", final=image)
        assert list_outputs(project).total == 2
    finally:
        project.close()


def test_the_lock_survives_other_code_opening_and_closing_its_files(tmp_path) -> None:
    root = tmp_path / "studio"
    project = Project.create(root)
    try:
        for name in ("project.lock", "project.db"):
            with open(root / name, "rb") as fh:
                fh.read(1)
        probe = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                                "from megaportrait_desktop.project.lock import held_elsewhere; "
                                "print(held_elsewhere(Path(sys.argv[1])))", str(root)],
                               capture_output=True, text=True, env=_env(), timeout=60)
        assert probe.stdout.strip() == "True", probe.stderr
    finally:
        project.close()


def test_a_project_from_an_earlier_version_in_wal_mode_opens_with_the_rollback_journal(tmp_path) -> None:
    root = tmp_path / "old"
    with Project.create(root) as project:
        project.create_identity("Grace")
    con = sqlite3.connect(root / "project.db")
    assert con.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    con.close()
    with Project.open(root, read_only=True) as reader:  # reading leaves it as it is
        assert [i.name for i in reader.identities()] == ["Grace"]
        with pytest.raises(ProjectError):
            reader.create_identity("not allowed")
    with Project.open(root) as project:
        assert project.db.one("PRAGMA journal_mode")[0] == "delete"
        assert [i.name for i in project.identities()] == ["Grace"]
    assert verify(Project.open(root, read_only=True)).ok
