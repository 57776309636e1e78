"""Recall on the diffusion engine (tiny models): the stored request names its models and LoRA version, so a
recalled run makes the identical request even after the settings, the models and the LoRA have changed."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from megaportrait_desktop.core.errors import ModelMissingError
from megaportrait_desktop.core.model_settings import save_settings
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window

from .conftest import CROP, settings_for

ROLES = ("base", "face_controlnet", "light_controlnet", "detail_controlnet", "inpaint_controlnet")


@pytest.fixture
def window(qtbot, tmp_path, tiny_models, trained_lora):
    save_settings(settings_for(tiny_models["folders"]))
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.show()
    identity = win.session.identity_id
    win.project.set_training(identity, "trained", progress=1.0, lora=Path(trained_lora.lora_path).read_bytes())
    yield win
    win.shutdown()


def _run(window, qtbot):
    with qtbot.waitSignal(window.jobs.run_finished, timeout=180_000) as done:
        window.run_pipeline("all")
    return window.project.output(done.args[0].output_id)


def test_a_recalled_diffusion_run_makes_the_identical_request(window, qtbot, tiny_models, tmp_path) -> None:
    session = window.session
    for path, value in (("engine", "diffusion"), ("crop_size", CROP), ("steps", 2), ("seed", 5),
                        ("identity_params.b_strength", 0.8), ("shading.light_cutoff", 14.0)):
        session.set(path, value)
    first = _run(window, qtbot)
    stored = first.request["diffusion"]
    assert set(stored["model_sha256"]) == {*ROLES, "lora"}  # every model and the LoRA version, by hash
    assert all(stored[role] for role in ROLES) and stored["lora"].startswith("objects/")

    # Everything moves on: other settings, another set of model files, a new LoRA for the identity.
    for path, value in (("seed", 99), ("identity_params.b_strength", 0.3), ("shading.light_cutoff", 30.0)):
        session.set(path, value)
    save_settings(settings_for(tiny_models["single"], tiny_models["folders"]))
    window.project.set_training(session.identity_id, "trained", lora=b"a newer LoRA file, never used here")
    assert session.request.diffusion.lora != window.project.resolve_request(first.request)["diffusion"]["lora"]

    window.history_actions.recall(first.id)
    assert session.request.to_dict() == RunRequest.from_dict(window.project.resolve_request(first.request)).to_dict()
    second = _run(window, qtbot)
    assert second.id != first.id and second.request == first.request
    assert second.models == first.models


def test_a_recalled_request_refuses_a_model_that_changed(window, tiny_models, tmp_path) -> None:
    """The pinned hash no longer matches the file at the path: a clear message, nothing run."""
    copy = tmp_path / "base copy"
    shutil.copytree(tiny_models["folders"]["base"], copy)
    session = window.session
    session.set("engine", "diffusion")
    session.set("crop_size", CROP)
    request = session.request
    d = request.diffusion
    pinned = request.replace(diffusion=replace(d, base=str(copy), model_sha256={"base": "0" * 64}))
    with pytest.raises(ModelMissingError, match="not the one these settings were made with"):
        run(pinned, diffusion=window.worker.cache.get("diffusion"))
