"""Identity reports in the project: the schema 2 migration, recording a run's report, sorting and filtering."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.cli import main
from megaportrait_desktop.core.contact_sheet import VERDICT_COLOURS
from megaportrait_desktop.core.identity_report import IdentityReport
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import OutputQuery, Project, ProjectError, list_outputs, verify
from megaportrait_desktop.project.database import MIGRATIONS, SCHEMA_VERSION, _statements


def _version_1_project(root) -> None:
    """A project exactly as version 1 of the schema wrote it, with one output (score 0.7) and its file."""
    root.mkdir()
    (root / "objects" / "ab").mkdir(parents=True)
    sha = "ab" + "0" * 62
    (root / "objects" / "ab" / f"{sha}.png").write_bytes(b"png")
    con = sqlite3.connect(root / "project.db", isolation_level=None)
    for statement in _statements(MIGRATIONS[1]):
        con.execute(statement)
    con.execute("PRAGMA user_version = 1")
    con.execute("INSERT INTO meta (key, value) VALUES ('name', 'Old studio')")
    con.execute("INSERT INTO files (sha256, path, size, kind, created) VALUES (?, ?, 3, 'output', 1)",
                (sha, f"objects/ab/{sha}.png"))
    con.execute("""INSERT INTO outputs (request, engine, final_sha, identity_score, created)
                   VALUES ('{"engine": "classic"}', 'classic', ?, 0.7, 5)""", (sha,))
    con.close()


def test_a_version_1_project_migrates_and_its_outputs_list(tmp_path) -> None:
    root = tmp_path / "old"
    _version_1_project(root)
    with Project.open(root) as project:
        assert project.db.one("PRAGMA user_version")[0] == SCHEMA_VERSION
        (old,) = list_outputs(project).items
        assert old.identity_score == 0.7 and old.verdict is None and old.identity_report is None
        assert list_outputs(project, OutputQuery(verdict="none")).total == 1
        assert list_outputs(project, OutputQuery(verdict="client")).total == 0
        assert list_outputs(project, OutputQuery(sort="score")).items[0].id == old.id
        # A new output with a report lands beside it; the verdict column is checked by SQLite.
        report = IdentityReport("dlib-resnet-v1", "euclidean", 0.6, 0.45, 0.5, 1, 0.8, "client")
        new_id = project.record_output(request={"engine": "classic"}, engine="classic",
                                       final=np.full((8, 8, 3), 90, np.uint8), identity_score=report.score,
                                       identity_report=report.to_json())
        with pytest.raises(sqlite3.IntegrityError), project.db.write() as tx:
            tx.execute("UPDATE outputs SET verdict = 'maybe' WHERE id = ?", (new_id,))
    with Project.open(root) as project:  # reopened: nothing to migrate, both outputs there
        assert [o.id for o in list_outputs(project, OutputQuery(sort="score")).items] == [old.id, new_id]
        assert [o.id for o in list_outputs(project, OutputQuery(verdict="client")).items] == [new_id]
        assert IdentityReport.from_json(project.output(new_id).identity_report) == report
        assert verify(project).ok
        with pytest.raises(ProjectError, match="Unknown verdict"):
            list_outputs(project, OutputQuery(verdict="maybe"))


def test_a_run_records_its_report_and_the_list_shows_the_verdict(tmp_path, photo_files, capsys) -> None:
    result = run(RunRequest(identity=tuple(str(p) for p in sorted(photo_files["identity"].iterdir())),
                            reference=str(photo_files["reference"])))
    report = result.identity_report
    assert report is not None and result.identity_score == pytest.approx(report.score)
    root = tmp_path / "studio"
    with Project.create(root) as project:
        output_id = project.record_run(result)
        for score in (0.1, 0.9):  # two outputs without a report around it
            project.record_output(request={"engine": "classic"}, engine="classic",
                                  final=np.full((8, 8, 3), 90, np.uint8), identity_score=score)
    with Project.open(root) as project:
        out = project.output(output_id)
        assert out.verdict == report.verdict
        assert IdentityReport.from_json(out.identity_report) == report
        assert [o.id for o in list_outputs(project, OutputQuery(verdict=report.verdict)).items] == [output_id]
        assert list_outputs(project, OutputQuery(verdict="none")).total == 2

    assert main(["project", "list", str(root), "--verdict", report.verdict, "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == output_id and row["verdict"] == report.verdict
    assert row["identity_report"]["held_out_distance"] == pytest.approx(report.held_out_distance, abs=1e-4)
    assert main(["project", "list", str(root), "--sort", "score"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert report.label in next(line for line in lines if f"#{output_id} " in line)

    # A contact sheet of those outputs: one tile each, with its verdict's badge colour.
    sheet_path = tmp_path / "sheet.png"
    assert main(["project", "contact-sheet", str(root), str(sheet_path), "--columns", "3"]) == 0
    assert "3 outputs" in capsys.readouterr().out
    sheet = np.asarray(Image.open(sheet_path).convert("RGB"))
    colours = {tuple(c) for c in sheet.reshape(-1, 3)[::7]}
    assert VERDICT_COLOURS[report.verdict] in colours and VERDICT_COLOURS[None] in colours
    assert sheet.shape[1] > 3 * 192 and sheet.shape[0] > 192
    assert main(["project", "contact-sheet", str(root), str(tmp_path / "none.png"), "--verdict", "reference"]) == 2


def test_importing_a_near_duplicate_warns_and_project_info_shows_the_sets_warnings(tmp_path, photo_files,
                                                                                   capsys) -> None:
    from megaportrait_desktop.project import import_identity_photos
    from megaportrait_desktop.project.imports import identity_set_issues

    root = tmp_path / "studio"
    with Project.create(root) as project:
        identity = project.create_identity("Grace")
        first, mirrored = import_identity_photos(project, identity, [photo_files["grace"],
                                                                     photo_files["identity"] / "grace_mirrored.png"])
        assert first.reason == "" and "same photo as grace.jpg" in mirrored.reason
        photos = project.identity_photos(identity)
        assert photos[0].quality["ok"] and [i["code"] for i in photos[1].quality["issues"]] == ["near_duplicate"]
        assert project.identity(identity).warning_count == 1
        assert [i.code for i in identity_set_issues(project, identity)] == ["near_duplicate"]
    assert main(["project", "info", str(root)]) == 0
    assert "warning: grace.jpg and grace_mirrored.png look like the same photo" in capsys.readouterr().out
