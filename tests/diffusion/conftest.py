"""Tiny random Stable Diffusion models, built offline from configs and saved like real ones.

Built once per session: a diffusers folder per role and a single-file checkpoint per role, both
loaded through the app's own resolution code. The tiny VAE is first taught to reconstruct the test
crop (a random VAE's output is unrelated to its input, which would make pixel distances meaningless).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CROP = 64  # working size of the tests: latents of 8×8


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


def settings_for(paths: dict[str, Path], configs: dict[str, Path] | None = None):
    from megaportrait_desktop.core.diffusion.models import ModelSettings, ModelSpec

    models = {role: ModelSpec(str(path), str(configs[role]) if configs else None) for role, path in paths.items()}
    return ModelSettings(models=models, device="cpu")


@pytest.fixture(scope="session")
def engine(tiny_models):
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine

    return DiffusionEngine(settings_for(tiny_models["folders"]))


@pytest.fixture(scope="session")
def single_file_engine(tiny_models):
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine

    return DiffusionEngine(settings_for(tiny_models["single"], tiny_models["folders"]))


@pytest.fixture(scope="session")
def trained_lora(tmp_path_factory: pytest.TempPathFactory, engine, photo_files):
    from megaportrait_desktop.core.diffusion.training import TrainingParams

    out = tmp_path_factory.mktemp("lora")
    # A high learning rate so four steps move the output measurably.
    params = TrainingParams(steps=4, resolution=CROP, rank=4, learning_rate=3e-2, seed=0)
    return engine.train_identity([photo_files["grace"]], out, params)
