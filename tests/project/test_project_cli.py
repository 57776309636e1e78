from __future__ import annotations

import json
import os
import time

import numpy as np

from megaportrait_desktop.cli import main
from megaportrait_desktop.project import Project


def test_project_commands_end_to_end(tmp_path, photo_files, capsys) -> None:
    root = tmp_path / "studio"
    assert main(["project", "new", str(root), "--name", "Studio"]) == 0
    assert main(["project", "import-identity", str(root), "--name", "Grace", str(photo_files["identity"])]) == 0
    err = capsys.readouterr().err
    assert "[1/2]" in err and "[2/2]" in err and "imported" in err
    assert main(["project", "import-reference", str(root), str(photo_files["reference"])]) == 0
    capsys.readouterr()

    with Project.open(root) as project:  # an output to list and export
        for score in (0.4, 0.9):
            project.record_output(request={"engine": "classic"}, engine="classic",
                                  final=np.full((40, 40, 3), 120, np.uint8), identity_id=1, reference_id=1,
                                  identity_score=score)

    assert main(["project", "info", str(root), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["name"] == "Studio" and info["identities"][0]["photos"] == 2 and info["outputs"] == 2
    assert info["references"][0]["faces"] == 1

    assert main(["project", "list", str(root), "--sort", "score", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["score"] for r in rows] == [0.9, 0.4] and rows[0]["identity"] == "Grace"

    assert main(["project", "export", str(root), str(tmp_path / "out.jpg"), "--output", str(rows[0]["id"])]) == 0
    assert (tmp_path / "out.jpg").is_file()
    assert main(["project", "export", str(root), str(tmp_path / "studio.zip")]) == 0
    assert main(["project", "import", str(tmp_path / "studio.zip"), str(tmp_path / "copy")]) == 0
    assert main(["project", "verify", str(tmp_path / "copy"), "--deep"]) == 0
    assert "Project OK" in capsys.readouterr().out

    stray = root / "objects" / "stray.part"
    stray.write_bytes(b"half a file")
    # A file this fresh may be a write under way in another process: left alone.
    assert main(["project", "verify", str(root), "--repair"]) == 0 and stray.exists()
    assert "left alone" in capsys.readouterr().out
    old = time.time() - 3600
    os.utime(stray, (old, old))
    assert main(["project", "verify", str(root)]) == 1
    assert main(["project", "verify", str(root), "--repair"]) == 0
    assert "After repair: Project OK" in capsys.readouterr().out


def test_project_cli_errors_are_one_line(tmp_path, capsys) -> None:
    (tmp_path / "plain").mkdir()
    for args in (["project", "info", str(tmp_path / "plain")],
                 ["project", "import", str(tmp_path / "missing.zip"), str(tmp_path / "x")],
                 ["project", "export", str(tmp_path / "plain"), str(tmp_path / "a.zip")]):
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
