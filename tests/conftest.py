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
    monkeypatch.setenv("MEGAPORTRAIT_CACHE", str(root / "cache"))


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


# Tiny random Stable Diffusion models (diffusion and app tests), built offline once per session.
CROP = 64  # working size of the diffusion tests: latents of 8×8


@pytest.fixture(scope="session")
def reference_crop(astronaut, astronaut_face) -> np.ndarray:
    from megaportrait_desktop.core.align import crop_face
    from megaportrait_desktop.core.imaging import to_float

    return np.clip(crop_face(to_float(astronaut), astronaut_face.landmarks, CROP).image, 0, 1).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory, reference_crop) -> dict[str, dict[str, Path]]:
    from megaportrait_desktop.core.diffusion import synthetic

    root = tmp_path_factory.mktemp("tiny-models")
    components = synthetic.build("tiny", seed=0, tokenizer_dir=root / "tokenizer")
    synthetic.fit_vae(components.vae, [reference_crop], steps=100)
    folders = synthetic.save_diffusers(components, root / "folders")
    single = synthetic.save_single_file(components, root / "single")
    # A single file carries weights only; its shape comes from the matching diffusers config folder.
    return {"folders": folders, "single": single}


