"""Tiny random Stable Diffusion models, built offline from configs and saved like real ones.

Built once per session: a diffusers folder per role and a single-file checkpoint per role, both
loaded through the app's own resolution code. The tiny VAE is first taught to reconstruct the test
crop (a random VAE's output is unrelated to its input, which would make pixel distances meaningless).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import CROP  # noqa: F401 - the diffusion tests import it from here


def settings_for(paths: dict[str, Path], configs: dict[str, Path] | None = None):
    from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec

    models = {role: ModelSpec(str(path), str(configs[role]) if configs else None) for role, path in paths.items()}
    return ModelSettings(models=models, device="cpu")


@pytest.fixture(scope="session")
def engine(tiny_models):
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine

    return DiffusionEngine(settings_for(tiny_models["folders"]))


@pytest.fixture(autouse=True)
def _engine_left_without_a_speed_lora(request: pytest.FixtureRequest):
    """The session's engine is shared: a draft test's speed LoRA (and its draft scale) must not reach the next
    test (the training test checks the base UNet has no LoRA layers; the reload test compares images)."""
    yield
    if "engine" in request.fixturenames:
        models = request.getfixturevalue("engine").models()
        models.set_speed_lora(None)
        models.set_draft(False)


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
