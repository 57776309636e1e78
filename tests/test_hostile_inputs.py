"""Odd inputs and environments at the command line: one clear line and exit 2, never "unexpected" (exit 3),
never a stall, and one odd file never stops a folder import."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.cli import main
from megaportrait_desktop.core.errors import ImageError
from megaportrait_desktop.core.imaging import load_image
from megaportrait_desktop.project import Project

ROOT = Path(__file__).resolve().parents[1]


def _jpeg_signature_then_zeros(path: Path, size: int) -> Path:
    """``FF D8 FF E0`` and then nothing but zeros (a sparse file: no disk used)."""
    with open(path, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0")
        f.truncate(size)
    return path


def _cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kwargs.pop("env", {})}
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env,
                          **kwargs)


def test_strip_shaped_and_fake_images_never_stop_a_folder_import(tmp_path, grace, astronaut, capsys) -> None:
    folder = tmp_path / "shoot"
    folder.mkdir()
    Image.fromarray(grace).save(folder / "a_grace.jpg", quality=92)
    Image.new("RGB", (100_000, 10), (120, 90, 80)).save(folder / "b_wide_strip.png")
    Image.new("RGB", (2600, 1), (120, 90, 80)).save(folder / "c_thin_strip.png")
    Image.new("RGB", (1, 2600), (120, 90, 80)).save(folder / "d_tall_strip.png")
    _jpeg_signature_then_zeros(folder / "e_not_a_photo.jpg", 64 << 20)
    Image.fromarray(astronaut).save(folder / "f_astronaut.png")
    root = tmp_path / "studio"
    assert main(["project", "new", str(root)]) == 0
    assert main(["project", "import-reference", str(root), str(folder)]) == 0
    err = capsys.readouterr().err
    assert "[6/6] f_astronaut.png: imported" in err and "[1/6] a_grace.jpg: imported" in err
    for name in ("b_wide_strip.png", "c_thin_strip.png", "d_tall_strip.png", "e_not_a_photo.jpg"):
        assert f"{name}: rejected" in err
    assert main(["project", "import-identity", str(root), "--name", "Grace", str(folder)]) == 0
    with Project.open(root) as project:
        assert len(project.references()) == 2 and project.identity_by_name("Grace").photo_count == 2
    for strip in ("b_wide_strip.png", "c_thin_strip.png"):
        capsys.readouterr()
        assert main(["analyze", str(folder / strip), "--no-landmarks"]) == 0
        assert json.loads(capsys.readouterr().out)["faces"] == []


def test_a_jpeg_signature_followed_by_a_gigabyte_of_zeros_is_refused_at_once(tmp_path) -> None:
    fake = _jpeg_signature_then_zeros(tmp_path / "holiday.jpg", 1 << 30)
    # Before: read whole, then Pillow skipped the zeros a byte at a time (about 15 MB/s): over a minute per GB.
    done = _cli(["analyze", str(fake)], timeout=60)
    assert done.returncode == 2 and "not an image" in done.stderr, done.stderr


def test_files_larger_than_any_image_within_the_pixel_limit_are_refused_unread(tmp_path) -> None:
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.truncate(80 << 20)
    with pytest.raises(ImageError, match="more than any image within the pixel limit"):
        load_image(big, max_pixels=1_000_000)  # at most 8 bytes per pixel + 64 MB of metadata: 72 MB


def test_output_closed_early_is_one_line_and_exit_2(photo_files) -> None:
    """``analyze photo | head -c 0``: the reader is gone before anything is written."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "analyze", str(photo_files["grace"])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(timeout=120) == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "closed" in lines[0], err


@pytest.fixture
def shared_tmp():
    """A folder another user can reach (the test's own tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="mp-perm-"))
    folder.chmod(0o777)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _as_another_user(args: list[str], shared: Path) -> subprocess.CompletedProcess:
    """The CLI as an ordinary user: as root (who may read anything) through ``setpriv`` as ``nobody``."""
    env = {"MEGAPORTRAIT_CONFIG": str(shared / "config"), "MEGAPORTRAIT_MODELS": str(shared / "models")}
    if os.geteuid() != 0:
        return _cli(args, env=env, timeout=120)
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: root reads every folder, so no folder is unreadable")
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                           str(ROOT / "main.py"), *args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=shared)


def test_unreadable_folders_are_one_line_and_exit_2(shared_tmp, photo_files) -> None:
    (shared_tmp / "config").mkdir(mode=0o777)
    locked = shared_tmp / "locked"
    locked.mkdir()
    shutil.copy(photo_files["grace"], locked / "grace.jpg")
    locked.chmod(0o000)
    project = shared_tmp / "studio"
    with Project.create(project):
        pass
    for path in (project, *project.rglob("*")):
        path.chmod(0o777 if path.is_dir() else 0o666)
    for args in (["run", "--identity", str(locked), "--reference", str(photo_files["reference"]),
                  "--out", str(shared_tmp / "out.png")],
                 ["project", "import-identity", str(project), "--name", "G", str(locked)]):
        done = _as_another_user(args, shared_tmp)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1, (args, done.stderr)
        assert lines[0].startswith("error: ") and "permission" in lines[0].lower(), lines
    locked.chmod(0o755)


def test_loading_the_face_detector_runs_no_library_search(tmp_path) -> None:
    """MediaPipe imports sounddevice, whose ``find_library("portaudio")`` ran ldconfig and gcc three times."""
    code = (
        "import ctypes.util, json, sys\n"
        "calls = []\n"
        "original = ctypes.util.find_library\n"
        "ctypes.util.find_library = lambda name: (calls.append(name), original(name))[1]\n"
        "import numpy as np\n"
        "from megaportrait_desktop.core.face import detect_faces\n"
        "detect_faces(np.zeros((64, 64, 3), np.uint8))\n"
        "print(json.dumps({'calls': calls, 'sounddevice_entry': 'sounddevice' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"calls": [], "sounddevice_entry": False}


@pytest.mark.slow
def test_self_test_leaves_nothing_in_the_temp_folder(tmp_path) -> None:
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    done = _cli(["--self-test"], env={"TMPDIR": str(private_tmp), "QT_QPA_PLATFORM": "offscreen"}, timeout=240)
    assert done.returncode == 0, done.stderr
    assert list(private_tmp.iterdir()) == []


def test_a_strip_never_reaches_cv2_resize_with_a_zero_side() -> None:
    from megaportrait_desktop.core.face import detect_faces

    for shape in ((10, 100_000), (1, 2600), (30, 100_000), (100_000, 30), (17, 3000)):
        assert detect_faces(np.full((*shape, 3), 128, np.uint8)) == []
