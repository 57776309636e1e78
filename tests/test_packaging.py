"""The installer build: PyInstaller bundle + its own self-test + the Linux archive (slow: minutes)."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.minutes
@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_build_command_makes_a_bundle_whose_self_test_passes() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "packaging" / "build.py")], capture_output=True, text=True,
                          timeout=3600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "self-test passed" in proc.stdout
    bundle = ROOT / "dist" / "MegaPortrait"
    assert (bundle / "megaportrait").is_file()
    internal = bundle / "_internal"
    assert (internal / "resources" / "demo" / "reference" / "eileen_collins.jpg").is_file()
    assert list(internal.rglob("face_landmark_with_attention.tflite"))  # MediaPipe's models
    # The identity scorer's two public-domain models, and never dlib's 68-point model (not for commercial use).
    assert (internal / "dlib_models" / "dlib_face_recognition_resnet_model_v1.dat").is_file()
    assert (internal / "dlib_models" / "shape_predictor_5_face_landmarks.dat").is_file()
    assert not list(internal.rglob("shape_predictor_68_face_landmarks.dat"))
    assert list(internal.rglob("libqoffscreen.so")) and list(internal.rglob("libqxcb.so"))  # Qt platforms
    assert not list(internal.rglob("test_*.py"))  # no tests in the bundle
    (archive,) = (ROOT / "dist").glob("MegaPortrait-*-linux-x86_64.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert any(n.endswith("/megaportrait-launcher") for n in names)
    assert any(n.endswith("/megaportrait.desktop") for n in names)
