from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.cli import main

from .badinput import EXPECTED, make_corpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, astronaut) -> dict[str, Path]:
    return make_corpus(tmp_path_factory.mktemp("cli_corpus"), astronaut)


def test_demo_writes_final_and_stages(tmp_path, capsys) -> None:
    assert main(["demo", "--out", str(tmp_path)]) == 0
    final = np.asarray(Image.open(tmp_path / "final.png"))
    reference = np.asarray(Image.open(ROOT / "resources" / "demo" / "reference" / "eileen_collins.jpg"))
    assert final.shape == reference.shape
    assert sorted(p.stem for p in (tmp_path / "final_stages").iterdir()) == sorted(
        ["reference", "A", "B", "light_map", "hf_map", "shaded", "mask", "pasted", "final"])
    assert "Wrote" in capsys.readouterr().out


def test_analyze_prints_faces_landmarks_and_quality(photo_files, capsys) -> None:
    assert main(["analyze", str(photo_files["grace"])]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["width"] == 512 and data["height"] == 600
    assert len(data["faces"]) == 1 and len(data["faces"][0]["landmarks"]) == 478
    assert data["quality"]["ok"] is True


def test_run_with_parameters(tmp_path, photo_files, capsys) -> None:
    out = tmp_path / "portrait.jpg"
    code = main(["run", "--identity", str(photo_files["identity"]), "--reference", str(photo_files["reference"]),
                 "--out", str(out), "--light-cutoff", "14", "--seam-width", "8", "--no-stages"])
    assert code == 0 and out.is_file() and not (tmp_path / "portrait_stages").exists()
    stored = Image.open(out)
    assert stored.size == (512, 512)


@pytest.mark.parametrize("name", sorted(k for k, v in EXPECTED.items() if v == "error"))
def test_bad_images_give_one_line_errors(corpus, name, capsys) -> None:
    assert main(["analyze", str(corpus[name])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and corpus[name].name in err


def test_odd_but_valid_images_are_analysed(corpus, capsys) -> None:
    for name in ("one_pixel", "cmyk_jpeg", "png_16bit", "exif_rotated_jpeg", "no_face"):
        assert main(["analyze", "--no-landmarks", str(corpus[name])]) == 0, name
        data = json.loads(capsys.readouterr().out)
        if name == "no_face" or name == "one_pixel":
            assert data["faces"] == [] and data["quality"]["issues"][0]["code"] == "no_face"
        if name == "exif_rotated_jpeg":
            assert (data["width"], data["height"]) == (512, 512) and len(data["faces"]) == 1
        if name == "png_16bit":
            assert data["bit_depth"] == 16


def test_run_bad_input_one_line(tmp_path, corpus, photo_files, capsys) -> None:
    cases = [
        ["--identity", str(tmp_path / "missing"), "--reference", str(photo_files["reference"])],
        ["--identity", str(photo_files["identity"]), "--reference", str(corpus["truncated_jpeg"])],
        ["--identity", str(photo_files["identity"]), "--reference", str(corpus["no_face"])],
        ["--identity", str(corpus["no_face"]), "--reference", str(photo_files["reference"])],
        ["--identity", str(photo_files["identity"]), "--reference", str(photo_files["reference"]), "--a-strength", "3"],
        ["--identity", str(photo_files["identity"]), "--reference", str(photo_files["reference"]), "--face-index", "2"],
    ]
    for args in cases:
        assert main(["run", *args, "--out", str(tmp_path / "x.png")]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len([line for line in err if line.startswith("error: ")]) == 1 and err[-1].startswith("error: ")
    assert not (tmp_path / "x.png").exists()


def test_the_real_command_prints_no_traceback(corpus) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(ROOT / "main.py"), "analyze", str(corpus["truncated_jpeg"])],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
