"""A full disk and a read-only medium, for real (a small tmpfs: the tests skip where it cannot be mounted).

Neither is damage: the message names the disk's problem and what to do, an intact project stays intact,
nothing is left half-created, and a project on read-only media can still be listed and exported.
"""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest

from megaportrait_desktop.cli import main
from megaportrait_desktop.project import Project, ProjectError, import_references, verify
from megaportrait_desktop.project.exchange import export_project, import_project

from ..mounts import tmpfs


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if not line.startswith("note:")]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unexpected" not in err, err
    return lines[0]


def _contents(root) -> dict[str, bytes]:
    """Every file of a project but SQLite's WAL companions (a reader of a WAL database makes them on a writable
    disk; they hold no change)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


def _small_project(root, photo_files) -> None:
    with Project.create(root) as project:
        import_references(project, [photo_files["reference"]])
        project.record_output(request={"engine": "classic"}, engine="classic",
                              final=np.full((64, 64, 3), 90, np.uint8), reference_id=1)


def test_a_full_disk_is_named_as_such_and_changes_nothing(tmp_path, photo_files, capsys) -> None:
    with tmpfs(tmp_path / "disk", 8 << 20) as disk:
        root = disk.path / "studio"
        _small_project(root, photo_files)
        disk.fill()
        capsys.readouterr()

        code = main(["project", "info", str(root)])  # reading an intact project: works, or says the disk is full
        err = capsys.readouterr().err
        assert "damaged" not in err and (code == 0 or (code == 2 and "full" in err)), err
        assert main(["project", "import-reference", str(root), str(photo_files["grace"])]) == 2
        assert "full" in _one_line(capsys)

        assert main(["project", "new", str(disk.path / "second")]) == 2
        assert "full" in _one_line(capsys)
        assert not (disk.path / "second").exists()  # no 0-byte project.db blocking a retry

        disk.free()
        assert main(["project", "new", str(disk.path / "second")]) == 0
        with Project.open(root) as project:
            assert verify(project, deep=True).ok and len(project.references()) == 1
            assert len(project.masks(1)) == 1


def test_import_checks_free_space_on_the_target_disk(tmp_path, photo_files, capsys) -> None:
    source = tmp_path / "big"
    _small_project(source, photo_files)
    with Project.open(source) as project:
        rng = np.random.default_rng(0)
        for _ in range(3):  # about 2.4 MB of outputs that do not compress
            project.record_output(request={}, engine="classic", final=rng.integers(0, 255, (512, 512, 3), np.uint8))
        archive = export_project(project, tmp_path / "big.zip")
    with tmpfs(tmp_path / "disk", 2 << 20) as disk:
        assert main(["project", "import", str(archive), str(disk.path / "copy")]) == 2
        line = _one_line(capsys)
        assert "free" in line and str(disk.path) in line
        assert list(disk.path.iterdir()) == []  # nothing unpacked, no staging folder left


def test_a_read_only_project_lists_and_exports_and_says_so(tmp_path, photo_files, capsys) -> None:
    with tmpfs(tmp_path / "dvd", 16 << 20) as disk:
        root = disk.path / "archive"
        _small_project(root, photo_files)
        disk.read_only()
        capsys.readouterr()

        assert main(["project", "info", str(root), "--json"]) == 0
        captured = capsys.readouterr()
        assert json.loads(captured.out)["outputs"] == 1 and "read-only" in captured.err
        assert main(["project", "list", str(root), "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)) == 1
        assert main(["project", "export", str(root), str(tmp_path / "archive.zip")]) == 0
        assert main(["project", "export", str(root), str(tmp_path / "one.png"), "--output", "1"]) == 0
        assert (tmp_path / "one.png").is_file()
        restored = import_project(tmp_path / "archive.zip", tmp_path / "restored")
        assert verify(restored, deep=True).ok and len(restored.references()) == 1
        restored.close()
        capsys.readouterr()

        for args in (["project", "import-reference", str(root), str(photo_files["grace"])],
                     ["project", "verify", str(root), "--repair"],
                     ["project", "new", str(disk.path / "another")]):
            assert main(args) == 2, args
            assert "read-only" in _one_line(capsys)
        assert sorted(p.name for p in disk.path.iterdir()) == ["archive"]


def test_open_read_only_refuses_every_change(tmp_path, photo_files) -> None:
    root = tmp_path / "p"
    _small_project(root, photo_files)
    before = _contents(root)
    with Project.open(root, read_only=True) as project:
        assert project.read_only and len(project.references()) == 1
        with pytest.raises(ProjectError, match="read-only"):
            project.set_rating(1, 5)
        with pytest.raises(ProjectError, match="read-only"):
            project.delete_output(1)
        export_project(project, tmp_path / "copy.zip")
    assert zipfile.ZipFile(tmp_path / "copy.zip").testzip() is None
    assert _contents(root) == before
    with Project.open(root) as project:
        assert project.output(1).rating == 0


def test_project_new_where_the_parent_cannot_be_written(tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "locked", 1 << 20) as disk:
        disk.read_only()
        assert main(["project", "new", str(disk.path / "sub" / "studio")]) == 2
        assert "read-only" in _one_line(capsys)
    shutil.rmtree(tmp_path / "locked", ignore_errors=True)
