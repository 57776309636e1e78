"""``evaluate`` on the development set: the table, the baselines, the sweep, and the files it writes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.cli import main
from megaportrait_desktop.core.errors import RequestError
from megaportrait_desktop.core.evaluate import find_people, parse_sweep
from megaportrait_desktop.core.paths import resources_dir

DEVSET = resources_dir() / "devset"


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    out = tmp_path_factory.mktemp("evaluate")
    code = main(["evaluate", "--identities", str(DEVSET), "--references", str(DEVSET), "--out", str(out),
                 "--sweep", "shading.light_cutoff=20"])
    assert code == 0
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_evaluate_writes_the_table_with_the_baselines(evaluation) -> None:
    out, results = evaluation
    summary = {s["method"]: s for s in results["summary"]}
    assert list(summary) == ["reference", "naive paste", "classic", "classic shading.light_cutoff=20", "client photo"]
    # 2 people × 2 references of the other person × 2 held-out photos each.
    assert all(s["n"] == 8 for s in summary.values())
    ref, paste, engine, own = summary["reference"], summary["naive paste"], summary["classic"], summary["client photo"]
    assert ref["d_ref"] == 0 and ref["success"] == 0 and ref["transfer"] == pytest.approx(0)
    assert own["transfer"] == pytest.approx(1) and own["success"] == 1
    # The engine moves the identity to the client (issue 18's level: every run reads as the client, not the
    # reference person, and three quarters of the way to the client's own photo; measured 100 % and 0.77,
    # the engine of 2943f6c 88 % and 0.49), with the reference's light and colour, an invisible seam and
    # every pixel outside its region untouched.
    assert engine["d_client"] < ref["d_client"] - 0.3 and engine["d_ref"] > 0.6
    assert engine["success"] >= 0.9 and 0.75 <= engine["transfer"] < 1
    assert engine["light"] > 0.95 and engine["colour"] < 2.0
    assert abs(engine["seam"]) < 3 and engine["outside"] == 0
    # The hard paste carries the client's own light and colour, and leaves a seam of tens of levels.
    assert paste["light"] < 0.5 and paste["colour"] > 10 and paste["seam"] > 20 and paste["outside"] == 0
    table = (out / "table.md").read_text()
    assert "| **classic** |" in table and "| naive paste |" in table and "| client photo |" in table
    assert "## Sweeps" in table and "shading.light_cutoff=20" in table
    assert "look like the same photo" in table  # the devset's mirrored second photos are flagged


@pytest.mark.slow
def test_evaluate_writes_every_run_and_a_contact_sheet(evaluation) -> None:
    out, results = evaluation
    with (out / "runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(results["runs"]) == 8 * 5
    assert {r["method"] for r in rows} == set(results["methods"])
    assert all(r["held_out"] and r["held_out"] != r["source"] for r in rows if r["method"] == "classic")
    assert {r["verdict"] for r in rows if r["method"] == "reference"} == {"reference"}
    sheet = np.asarray(Image.open(out / "contact_sheet.png").convert("RGB"))
    assert sheet.shape[0] > 8 * 192 and sheet.shape[1] > 5 * 192  # a row per run, a column per method


def test_bad_sweeps_and_folders_are_refused_before_any_run(tmp_path, capsys) -> None:
    assert parse_sweep("shading.light_cutoff=5, 10,20").values == (5, 10, 20)
    assert parse_sweep("identity_params.source_index=none,0").values == (None, 0)
    for text in ("shading.nothing=1", "light_cutoff=1", "shading.light_weight=2", "shading.light_cutoff"):
        with pytest.raises(RequestError):
            parse_sweep(text)
    with pytest.raises(RequestError, match="no such folder"):
        find_people([tmp_path / "missing"])
    assert main(["evaluate", "--identities", str(DEVSET), "--references", str(DEVSET), "--out", str(tmp_path),
                 "--sweep", "shading.light_weight=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "light weight" in err and "\n" not in err
