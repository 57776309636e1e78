"""The parts of the Ray runner that need no cluster: a node's models by hash and its refusal, a job's inputs
by content hash on a node and its result naming the desktop's files again, cached inputs that expire."""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.core.cluster import normalise_address
from megaportrait_desktop.core.model_hashes import disagreement, held_models, request_pins
from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec, save_settings
from megaportrait_desktop.core.ray_worker import NodeWorker, localise, prune, restore
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.core.runner import WorkItem, execute


@pytest.fixture
def base_model(tmp_path) -> Path:
    from safetensors.numpy import save_file

    path = tmp_path / "base.safetensors"
    save_file({"weight": np.arange(8, dtype=np.float32)}, str(path))
    return path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_machine_reports_its_models_by_the_hash_runs_record(base_model) -> None:
    assert held_models(ModelSettings()) == {"base": None, "face_controlnet": None, "light_controlnet": None,
                                            "detail_controlnet": None, "inpaint_controlnet": None, "speed_lora": None}
    held = held_models(ModelSettings(models={"base": ModelSpec(str(base_model))}))
    assert held["base"] == _sha(base_model) and held["light_controlnet"] is None
    # A diffusion request is pinned to the models it would run with here: its own sources, else the settings'.
    settings = ModelSettings(models={"base": ModelSpec(str(base_model))})
    assert request_pins({"quality": "final"}, settings) == {"base": _sha(base_model)}
    assert request_pins({"base": str(base_model)}, ModelSettings()) == {"base": _sha(base_model)}


def test_a_node_with_other_models_says_which_and_what_to_do(base_model) -> None:
    held = {"base": _sha(base_model), "inpaint_controlnet": None}
    assert disagreement({"base": _sha(base_model), "lora": "f" * 64}, held, "studio-2") is None  # a LoRA travels
    assert disagreement(None, held, "studio-2") is None
    differs = disagreement({"base": "a" * 64}, held, "studio-2")
    assert differs == (f"Node studio-2 refuses this job: its base model (Stable Diffusion 1.5) is not the job's "
                       f"(SHA-256 {_sha(base_model)[:12]}… there, aaaaaaaaaaaa… wanted). Install the studio's model "
                       "pack on studio-2, or take it out of the cluster.")
    missing = disagreement({"inpaint_controlnet": "b" * 64}, held, "studio-2")
    assert missing.startswith("Node studio-2 refuses this job: it has no inpaint ControlNet (the job needs SHA-256 "
                              "bbbbbbbbbbbb…)")


def test_a_node_worker_refuses_a_job_pinned_to_models_it_does_not_hold(base_model) -> None:
    save_settings(ModelSettings(models={"base": ModelSpec(str(base_model))}))  # this "node's" models.json
    worker = NodeWorker()
    item = WorkItem(7, "generate", "identity-1",
                    request={"identity": ["/nowhere/a.png"], "reference": "/nowhere/r.png"})
    event = worker.run(item, "studio-2·gpu0", {}, {"base": "c" * 64})
    assert (event.event, event.job_id, event.worker, event.error_kind, event.retryable) == \
        ("failed", 7, "studio-2·gpu0", "models", True)
    assert event.error.startswith("Node studio-2 refuses this job: its base model")
    assert event.result == {"refused": True}
    worker.cancel(8)  # cancelled before it arrived: refused when it does
    assert worker.run(WorkItem(8, "generate", "identity-1"), "studio-2·gpu0", {}, {}).event == "cancelled"


def _node_copies(files: dict[str, str], cache: Path) -> dict[str, str]:
    """What a node's worker does with a job's inputs: one file per content hash in its cache."""
    local = {}
    for path in files:
        data = Path(path).read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        copy = cache / sha[:2] / f"{sha}{Path(path).suffix}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(data)
        local[path] = str(copy)
    return local


def test_a_job_run_from_a_nodes_hashed_copies_makes_the_same_portrait_and_names_the_desktops_files(
        tmp_path, photo_files) -> None:
    request = RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                         crop_size=256).to_dict()
    item = WorkItem(1, "generate", "identity-1", request=request)
    local = _node_copies({p: p for p in [*request["identity"], request["reference"]]}, tmp_path / "node-cache")
    there = localise(item, local, tmp_path / "training")
    assert all(p.startswith(str(tmp_path / "node-cache")) for p in [*there.request["identity"],
                                                                    there.request["reference"]])
    on_node = execute(there, "studio-2·gpu0", lambda f, m: None, threading.Event(), {})
    at_desk = execute(item, "cpu·1", lambda f, m: None, threading.Event(), {})
    assert on_node.event == at_desk.event == "done"
    back = restore(item, on_node.result)
    assert back.request.identity == (str(photo_files["grace"]),) and back.request.reference == request["reference"]
    assert np.array_equal(back.final.pixels, at_desk.result.final.pixels)  # the same portrait, bit for bit


def test_a_training_job_sends_its_photos_by_hash_and_brings_its_lora_back_as_bytes(tmp_path) -> None:
    photo = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(photo)
    item = WorkItem(3, "train", "identity-2", training={"photos": [str(photo)], "params": {},
                                                         "work": str(tmp_path / "project" / "training" / "identity_2")})
    local = _node_copies({str(photo): ""}, tmp_path / "node-cache")
    there = localise(item, local, tmp_path / "node-training")
    assert there.training["photos"] == [local[str(photo)]]
    assert Path(there.training["work"]).parent == tmp_path / "node-training"  # the node's folder, never the desktop's
    lora = tmp_path / "node-training" / "identity_lora.safetensors"
    lora.parent.mkdir(parents=True, exist_ok=True)
    lora.write_bytes(b"lora bytes")
    assert restore(item, str(lora)) == {"lora": b"lora bytes", "name": "identity_lora.safetensors"}


def test_cached_inputs_a_node_has_not_used_for_a_week_are_deleted(tmp_path) -> None:
    old, fresh = tmp_path / "ab" / "ab12.png", tmp_path / "cd" / "cd34.png"
    for path in (old, fresh):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"x")
    week_ago = time.time() - 8 * 24 * 3600
    os.utime(old, (week_ago, week_ago))
    assert prune(tmp_path, 7 * 24 * 3600) == 1
    assert not old.exists() and fresh.exists()
    shutil.rmtree(tmp_path / "cd")
    assert prune(tmp_path / "missing", 1) == 0


@pytest.mark.parametrize(("given", "address"), [
    ("studio-head", "ray://studio-head:10001"), ("ray://10.0.0.5", "ray://10.0.0.5:10001"),
    ("ray://10.0.0.5:10099", "ray://10.0.0.5:10099"), ("10.0.0.5:6379", "10.0.0.5:6379"),
])
def test_a_cluster_address_is_ray_client_unless_it_names_the_heads_port(given, address) -> None:
    assert normalise_address(given) == address
