"""Training an identity from the app: the job runs on the GPU worker (tiny models on the CPU here)."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from megaportrait_desktop.core.model_settings import save_settings
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window

from ..conftest import CROP


@pytest.fixture
def window(qtbot, tmp_path, tiny_models):
    from ..diffusion.conftest import settings_for

    save_settings(settings_for(tiny_models["folders"]))  # the user's models.json points at the tiny models
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def test_train_an_identity_through_the_worker(window, qtbot) -> None:
    identity_id = window.identities.current_id()
    window.project.update_identity(identity_id, training_params={"steps": 3, "resolution": CROP, "rank": 4})
    progress = []
    window.worker.progress.connect(lambda job, stage, step, total, msg: progress.append((stage, step, total)))
    with qtbot.waitSignal(window.worker.finished, timeout=120_000):
        window.identities.train.click()
    qtbot.waitUntil(lambda: not window.jobs.training, timeout=5000)
    identity = window.project.identity(identity_id)
    assert identity.training_state == "trained" and identity.training_params["steps"] == 3
    weights = load_file(str(window.project.path_of(identity.lora_path)))
    assert any("lora" in key for key in weights)
    assert ("train", 3, 3) in progress
    assert "trained" in window.identities.list.currentItem().text()
    request = window.session.request
    assert request.diffusion.lora == str(window.project.path_of(identity.lora_path))
    assert identity.trigger_token in request.diffusion.prompt


def test_cancel_training_marks_it_cancelled(window, qtbot) -> None:
    identity_id = window.identities.current_id()
    window.project.update_identity(identity_id, training_params={"steps": 200, "resolution": CROP, "rank": 4})
    window.worker.progress.connect(lambda job, stage, step, *_: stage == "train" and step >= 2
                                   and window.worker.cancel())
    with qtbot.waitSignal(window.worker.cancelled, timeout=120_000):
        window.identities.train.click()
    qtbot.waitUntil(lambda: not window.jobs.training, timeout=5000)
    assert window.project.identity(identity_id).training_state == "cancelled"
    assert window.project.identity(identity_id).lora_path is None
