"""A project (zip or folder) from someone else cannot read, delete or export any file outside it.

Its database names files by path; a hostile one names ``/home/you/...``, ``objects/../../...``, a link in
``objects/`` that points out, or a file under a hash that is not its own. Every command that follows
such a path (import, verify --repair, --deep --repair, Delete → garbage collection, export) must leave
the outside file unread, undeleted and out of every zip. "Unread" is checked by the file's access time
(the file system updates it on a read; the fixture checks that it does here).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import zipfile
from pathlib import Path

import numpy as np
import pytest

from megaportrait_desktop.cli import main
from megaportrait_desktop.project import Project, ProjectError, import_references, verify
from megaportrait_desktop.project.exchange import export_output, export_project, import_project

SECRET = b"the user's own file, outside the project: do not read, delete or export\n"
VARIANTS = ("absolute", "absolute_right_hash", "dotdot", "symlink")


class Victim:
    """A file outside the project, and whether anything read it since :meth:`arm`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(SECRET)
        self.reads_visible = self._calibrate()

    def arm(self) -> None:
        st = self.path.stat()
        os.utime(self.path, (1.0, st.st_mtime))  # relatime updates an access time older than the change time

    def was_read(self) -> bool:
        return self.reads_visible and self.path.stat().st_atime > 1.0

    def intact(self) -> bool:
        return self.path.is_file() and self.path.read_bytes() == SECRET

    def _calibrate(self) -> bool:
        self.arm()
        self.path.read_bytes()
        return self.path.stat().st_atime > 1.0


@pytest.fixture
def victim(tmp_path) -> Victim:
    (tmp_path / "outside").mkdir()
    return Victim(tmp_path / "outside" / "victim.txt")


@pytest.fixture(scope="module")
def clean_zip(tmp_path_factory, photo_files) -> Path:
    """An exported project: a reference (with its automatic mask) and two outputs."""
    root = tmp_path_factory.mktemp("clean") / "p"
    with Project.create(root) as project:
        import_references(project, [photo_files["reference"]])
        for value in (40, 200):
            project.record_output(request={}, engine="classic", final=np.full((32, 32, 3), value, np.uint8),
                                  reference_id=1)
        return export_project(project, root.parent / "clean.zip")


def _hostile_row(variant: str, victim: Victim, root: Path) -> tuple[str, str]:
    """The (sha256, path) of a files row naming the victim."""
    if variant == "absolute":
        return "f" * 64, str(victim.path)  # and a hash the victim does not have: --deep --repair calls it damaged
    if variant == "absolute_right_hash":
        return hashlib.sha256(SECRET).hexdigest(), str(victim.path)
    if variant == "dotdot":
        return "e" * 64, "objects/../" + os.path.relpath(victim.path, root).replace(os.sep, "/")
    sha = "d" * 64
    link = root / "objects" / "dd" / f"{sha}.png"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(victim.path)
    return sha, f"objects/dd/{sha}.png"


def _project_with_hostile_row(tmp_path: Path, clean_zip: Path, variant: str, victim: Victim,
                              referenced: bool = False) -> Path:
    """A project folder (as found on a USB stick) whose database names the victim."""
    root = tmp_path / "found"
    import_project(clean_zip, root).close()
    sha, path = _hostile_row(variant, victim, root)
    con = sqlite3.connect(root / "project.db")
    with con:
        con.execute("INSERT INTO files (sha256, path, size, kind, created) VALUES (?, ?, ?, 'output', 0)",
                    (sha, path, len(SECRET)))
        if referenced:
            con.execute("UPDATE outputs SET final_sha = ? WHERE id = 1", (sha,))
    con.close()
    victim.arm()
    return root


def _zip_with_hostile_row(tmp_path: Path, clean_zip: Path, variant: str, victim: Victim) -> Path:
    work = tmp_path / "db"
    work.mkdir()
    with zipfile.ZipFile(clean_zip) as zf:
        (work / "project.db").write_bytes(zf.read("project.db"))
        members = [(info, zf.read(info)) for info in zf.infolist() if info.filename != "project.db"]
    sha, path = _hostile_row(variant, victim, tmp_path / "imported")
    con = sqlite3.connect(work / "project.db")
    with con:
        con.execute("INSERT INTO files (sha256, path, size, kind, created) VALUES (?, ?, ?, 'output', 0)",
                    (sha, path, len(SECRET)))
        con.execute("UPDATE outputs SET final_sha = ? WHERE id = 1", (sha,))
    con.close()
    hostile = tmp_path / "hostile.zip"
    with zipfile.ZipFile(hostile, "w") as zf:
        zf.write(work / "project.db", "project.db")
        for info, data in members:
            zf.writestr(info, data)
    victim.arm()
    return hostile


@pytest.mark.parametrize("variant", ["absolute", "absolute_right_hash", "dotdot"])
def test_import_refuses_a_zip_whose_database_names_outside_files(tmp_path, clean_zip, victim, variant) -> None:
    hostile = _zip_with_hostile_row(tmp_path, clean_zip, variant, victim)
    with pytest.raises(ProjectError, match="outside the project"):
        import_project(hostile, tmp_path / "imported")
    assert not (tmp_path / "imported").exists() and not list(tmp_path.glob(".imported.importing-*"))
    assert not victim.was_read() and victim.intact()


@pytest.mark.parametrize("deep", [False, True], ids=["repair", "deep-repair"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_verify_repair_never_touches_outside_files(tmp_path, clean_zip, victim, variant, deep, capsys) -> None:
    root = _project_with_hostile_row(tmp_path, clean_zip, variant, victim, referenced=variant != "symlink")
    flags = ["--deep"] if deep else []
    assert main(["project", "verify", str(root), *flags]) == 1
    assert "outside the project" in capsys.readouterr().out
    assert main(["project", "verify", str(root), *flags, "--repair"]) == 0
    assert not victim.was_read() and victim.intact()
    with Project.open(root) as project:
        report = verify(project, deep=True)
        assert report.ok, report
        assert len(project.references()) == 1  # only what named the outside file went
    assert victim.intact()


@pytest.mark.parametrize("variant", VARIANTS)
def test_delete_and_garbage_collection_never_touch_outside_files(tmp_path, clean_zip, victim, variant) -> None:
    root = _project_with_hostile_row(tmp_path, clean_zip, variant, victim, referenced=True)
    with Project.open(root) as project:
        project.delete_output(1)  # the output that named it: its row goes, the outside file stays
        project.delete_output(2)
        project.collect_garbage()
    assert not victim.was_read() and victim.intact()


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_never_carries_outside_files(tmp_path, clean_zip, victim, variant) -> None:
    root = _project_with_hostile_row(tmp_path, clean_zip, variant, victim, referenced=True)
    out = tmp_path / "out.zip"
    with Project.open(root) as project:
        with pytest.raises(ProjectError):
            export_project(project, out)
        with pytest.raises(ProjectError):
            export_output(project, 1, tmp_path / "one.png")
    assert not out.exists() and not (tmp_path / "one.png").exists()
    assert not victim.was_read() and victim.intact()
    # Once repaired, the project exports, without the outside file.
    victim.arm()
    assert main(["project", "verify", str(root), "--repair"]) == 0
    assert main(["project", "export", str(root), str(out)]) == 0
    with zipfile.ZipFile(out) as zf:
        assert all(SECRET not in zf.read(info) for info in zf.infolist())
        assert all(name == "project.db" or name.startswith("objects/") for name in zf.namelist())
    assert not victim.was_read() and victim.intact()


def test_a_linked_objects_folder_is_never_followed(tmp_path, clean_zip, victim) -> None:
    """``objects/`` itself a link to another folder: its files are not the project's, nothing there is deleted."""
    root = tmp_path / "found"
    import_project(clean_zip, root).close()
    elsewhere = victim.path.parent
    (elsewhere / "stray.part").write_bytes(b"the user's, too")
    os.utime(elsewhere / "stray.part", (1.0, 1.0))
    (root / "objects").rename(tmp_path / "moved-objects")
    (root / "objects").symlink_to(elsewhere, target_is_directory=True)
    victim.arm()
    main(["project", "verify", str(root), "--repair"])
    assert not victim.was_read() and victim.intact() and (elsewhere / "stray.part").is_file()


# ------------------------------------------------------------------------------- odd zips (exit 2, not 3)


def _rewrite_db(clean_zip: Path, tmp_path: Path, name: str, sql: list[str]) -> Path:
    work = tmp_path / f"{name}.db"
    with zipfile.ZipFile(clean_zip) as zf:
        work.write_bytes(zf.read("project.db"))
        members = [(info, zf.read(info)) for info in zf.infolist() if info.filename != "project.db"]
    con = sqlite3.connect(work)
    for statement in sql:
        con.execute(statement)
    con.commit()
    con.close()
    out = tmp_path / f"{name}.zip"
    with zipfile.ZipFile(out, "w") as zf:
        zf.write(work, "project.db")
        for info, data in members:
            zf.writestr(info, data)
    return out


@pytest.mark.parametrize("case, sql, message", [
    ("version0", ["PRAGMA user_version = 0"], "no MegaPortrait project data"),
    ("negative", ["PRAGMA user_version = -5"], "no MegaPortrait project data"),
    ("newer", ["PRAGMA user_version = 2147483647"], "newer version"),
    ("no_outputs", ["PRAGMA foreign_keys = OFF", "DROP TABLE output_stages", "DROP TABLE output_tags",
                    "DROP TABLE jobs", "DROP TABLE outputs"], "lacks its table"),
    ("no_column", ["ALTER TABLE identities DROP COLUMN notes"], "lacks the column"),
    ("trigger", ["CREATE TRIGGER t AFTER INSERT ON outputs BEGIN DELETE FROM files; END"], "trigger"),
])
def test_odd_databases_in_a_zip_are_one_line_and_exit_2(tmp_path, clean_zip, case, sql, message, capsys) -> None:
    archive = _rewrite_db(clean_zip, tmp_path, case, sql)
    assert main(["project", "import", str(archive), str(tmp_path / "into")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err and "unexpected" not in err
    assert not (tmp_path / "into").exists()


def _patch_member(data: bytes, name: str, offset_in_header: int, value: int) -> bytes:
    """Set a 2-byte field (flags at 6, method at 8 in the local header) of one member in both its headers."""
    out = bytearray(data)
    end = data.rindex(b"PK\x05\x06")
    pos = int.from_bytes(data[end + 16:end + 20], "little")  # the central directory
    while data[pos:pos + 4] == b"PK\x01\x02":
        n, m, k = (int.from_bytes(data[pos + i:pos + i + 2], "little") for i in (28, 30, 32))
        if data[pos + 46:pos + 46 + n] == name.encode():
            local = int.from_bytes(data[pos + 42:pos + 46], "little")
            out[local + offset_in_header:local + offset_in_header + 2] = value.to_bytes(2, "little")
            out[pos + offset_in_header + 2:pos + offset_in_header + 4] = value.to_bytes(2, "little")
            return bytes(out)
        pos += 46 + n + m + k
    raise AssertionError(f"{name} not in the zip")


@pytest.mark.parametrize("case, offset, value, message", [
    ("encrypted", 6, 0x1, "encrypted"),             # general purpose flag bit 0
    ("unknown_method", 8, 99, "compression method"),  # 99: AES, which zipfile cannot unpack
])
def test_encrypted_and_unknown_compression_members_are_one_line_and_exit_2(tmp_path, clean_zip, case, offset, value,
                                                                           message, capsys) -> None:
    with zipfile.ZipFile(clean_zip) as zf:
        member = next(i.filename for i in zf.infolist() if i.filename != "project.db")
    archive = tmp_path / f"{case}.zip"
    archive.write_bytes(_patch_member(clean_zip.read_bytes(), member, offset, value))
    assert main(["project", "import", str(archive), str(tmp_path / case)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "unexpected" not in err and message in err, err
    assert not (tmp_path / case).exists()
