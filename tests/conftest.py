"""Shared fixtures: the two public-domain photos, their faces, and an isolated config/models folder."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or Qt: never the network, never a real screen.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("MEGAPORTRAIT_CONFIG", str(root / "config"))
    monkeypatch.setenv("MEGAPORTRAIT_MODELS", str(root / "models"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


@pytest.fixture(scope="session")
def grace() -> np.ndarray:
    return np.asarray(Image.open(GRACE_HOPPER).convert("RGB"))


@pytest.fixture(scope="session")
def astronaut_face(astronaut):
    from megaportrait_desktop.core.face import detect_faces

    return detect_faces(astronaut)[0]


@pytest.fixture(scope="session")
def grace_face(grace):
    from megaportrait_desktop.core.face import detect_faces

    return detect_faces(grace)[0]


@pytest.fixture(scope="session")
def photo_files(tmp_path_factory: pytest.TempPathFactory, astronaut, grace) -> dict[str, Path]:
    """The two photos as files: the reference (astronaut) and a two-photo identity set (Grace Hopper)."""
    root = tmp_path_factory.mktemp("photos")
    identity = root / "identity"
    identity.mkdir()
    Image.fromarray(grace).save(identity / "grace.jpg", quality=95)
    Image.fromarray(grace[:, ::-1]).save(identity / "grace_mirrored.png")
    Image.fromarray(astronaut).save(root / "astronaut.png")
    return {"identity": identity, "reference": root / "astronaut.png", "grace": identity / "grace.jpg"}
