"""Bad input gives a clear error and changes nothing in the project."""

from __future__ import annotations

import hashlib
import sqlite3
import zipfile

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.project import Project, ProjectError, import_identity_photos, import_references, verify
from megaportrait_desktop.project.exchange import export_project, import_project


def snapshot(root) -> dict[str, str]:
    """sha256 of every file under the project folder."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


@pytest.fixture
def filled(tmp_path, photo_files):
    project = Project.create(tmp_path / "p")
    identity = project.create_identity("Grace")
    import_identity_photos(project, identity, [photo_files["grace"]])
    import_references(project, [photo_files["reference"]])
    project.record_output(request={}, engine="classic", final=np.zeros((32, 32, 3), np.uint8))
    project.close()
    return tmp_path / "p"


def test_not_a_project(tmp_path) -> None:
    (tmp_path / "holiday").mkdir()
    (tmp_path / "holiday" / "a.jpg").write_bytes(b"x")
    with pytest.raises(ProjectError, match="not a MegaPortrait project"):
        Project.open(tmp_path / "holiday")
    with pytest.raises(ProjectError, match="not a folder"):
        Project.open(tmp_path / "nowhere")
    assert sorted(p.name for p in (tmp_path / "holiday").iterdir()) == ["a.jpg"]


def test_corrupt_database_is_refused_untouched(filled) -> None:
    db = filled / "project.db"
    data = bytearray(db.read_bytes())
    data[:100] = b"\x00garbage" * 12 + b"junk"
    db.write_bytes(bytes(data))
    before = snapshot(filled)
    with pytest.raises(ProjectError, match="damaged"):
        Project.open(filled)
    assert snapshot(filled) == before


def test_newer_schema_is_refused_untouched(filled) -> None:
    con = sqlite3.connect(filled / "project.db")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    before = snapshot(filled)
    with pytest.raises(ProjectError, match="newer version"):
        Project.open(filled)
    assert snapshot(filled) == before


def test_a_sqlite_file_that_is_not_a_project(tmp_path) -> None:
    (tmp_path / "other").mkdir()
    con = sqlite3.connect(tmp_path / "other" / "project.db")
    con.execute("CREATE TABLE photos (x)")
    con.commit()
    con.close()
    with pytest.raises(ProjectError, match="not a MegaPortrait project"):
        Project.open(tmp_path / "other")


def test_bad_imports_change_nothing(tmp_path, filled) -> None:
    project = Project.open(filled)
    before_rows = (len(project.identity_photos(1)), len(project.references()))
    before = snapshot(filled)
    (tmp_path / "letter.jpg").write_text("Dear client,")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    (tmp_path / "empty.png").write_bytes(b"")
    bad = [tmp_path / "letter.jpg", tmp_path / "noise.png", tmp_path / "empty.png", tmp_path / "missing.jpg"]
    for results in (import_identity_photos(project, 1, bad), import_references(project, bad)):
        assert [r.status for r in results] == ["rejected"] * 4
        assert all(r.reason for r in results)
    with pytest.raises(ProjectError, match="Identity 7 does not exist"):
        import_identity_photos(project, 7, bad)
    assert (len(project.identity_photos(1)), len(project.references())) == before_rows
    project.close()
    assert snapshot(filled) == before


def test_zip_import_refuses_traversal_links_bombs_and_junk(tmp_path, filled) -> None:
    with Project.open(filled) as project:
        good = export_project(project, tmp_path / "good.zip")
    db_bytes = zipfile.ZipFile(good).read("project.db")

    def make(name: str, entries: list[tuple[zipfile.ZipInfo | str, bytes]]):
        path = tmp_path / name
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for info, data in entries:
                zf.writestr(info, data)
        return path

    link = zipfile.ZipInfo("objects/aa/" + "a" * 64 + ".png")
    link.external_attr = (0o120777 << 16)
    cases = {
        "traversal.zip": ([("project.db", db_bytes), ("../../evil.png", b"x")], "not part of a project"),
        "absolute.zip": ([("project.db", db_bytes), ("/etc/evil.png", b"x")], "not part of a project"),
        "link.zip": ([("project.db", db_bytes), (link, b"/etc/passwd")], "link"),
        "bomb.zip": ([("project.db", db_bytes), ("objects/bb/" + "b" * 64 + ".png", b"\0" * (64 << 20))],
                     "zip bomb"),
        "nodb.zip": ([("objects/cc/" + "c" * 64 + ".png", b"x")], "no project.db"),
    }
    for name, (entries, message) in cases.items():
        target = tmp_path / f"into_{name}"
        with pytest.raises(ProjectError, match=message):
            import_project(make(name, entries), target)
        assert not target.exists(), name
        assert not list(tmp_path.glob(f".into_{name}*")), name  # no half-unpacked folder left
    (tmp_path / "not.zip").write_bytes(b"PK nope")
    with pytest.raises(ProjectError, match="not a readable zip"):
        import_project(tmp_path / "not.zip", tmp_path / "x")
    with pytest.raises(ProjectError, match="limit"):
        import_project(good, tmp_path / "small_limit", max_unpacked_bytes=1000)
    restored = import_project(good, tmp_path / "restored")
    assert verify(restored, deep=True).ok and len(restored.references()) == 1
    restored.close()
    assert not (tmp_path / "evil.png").exists()
