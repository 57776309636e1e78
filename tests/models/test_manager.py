"""The state of each role: installed / missing / damaged, size, source, hash; the Hugging Face cache used in place."""

from __future__ import annotations

import shutil

import pytest

from megaportrait_desktop.core import model_settings
from megaportrait_desktop.core.diffusion import models
from megaportrait_desktop.core.errors import ModelMissingError
from megaportrait_desktop.core.modelstore import manager, packs
from megaportrait_desktop.core.paths import models_dir

from .conftest import tree


def _states() -> dict[str, manager.RoleState]:
    return {s.role: s for s in manager.model_states()}


def test_a_fresh_machine_shows_every_role_missing_but_the_identity_scorer() -> None:
    states = _states()
    assert list(states) == list(manager.MANAGED_ROLES)
    assert {s.state for r, s in states.items() if r != "identity"} == {"missing"}
    # dlib's recogniser installs with the app, under a licence that allows commercial use.
    identity = states["identity"]
    assert identity.state == "installed" and identity.licence.id == "cc0-1.0" and identity.licence_accepted
    assert {p.name for p in identity.path.iterdir()} >= {"dlib_face_recognition_resnet_model_v1.dat",
                                                         "shape_predictor_5_face_landmarks.dat"}
    assert identity.size > 30e6 and {s.role: s for s in manager.model_states(hashes=True)}["identity"].sha256
    assert "Install" in states["base"].message and "pack" in states["insightface"].message
    assert states["insightface"].licence.requires_acceptance and not states["insightface"].licence_accepted


def test_installed_pack_shows_sizes_sources_and_hashes(tiny_pack) -> None:
    packs.install_pack(tiny_pack)
    states = _states()
    for role in (*model_settings.ROLES, "insightface"):
        s = states[role]
        assert s.state == "installed", (role, s.message)
        assert s.size > 0 and s.sha256 and s.path.is_relative_to(models_dir())
        # The recorded hash is the one a run's provenance records (no file read to show it).
        if role in model_settings.ROLES:
            assert s.sha256 == models.fingerprint(s.path), role
    assert states["base"].kind == "single_file"
    assert states["annotators"].state == "missing"
    hashed = {s.role: s for s in manager.model_states(hashes=True)}
    assert hashed["light_controlnet"].sha256 == states["light_controlnet"].sha256


def test_a_truncated_or_removed_file_shows_damaged(tiny_pack) -> None:
    packs.install_pack(tiny_pack)
    light = _states()["light_controlnet"].path
    weights = next(light.rglob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-100])
    (models_dir() / "insightface/models/buffalo_l/w600k_r50.onnx").unlink()
    states = _states()
    assert states["light_controlnet"].state == "damaged" and "reinstall" in states["light_controlnet"].message
    assert states["insightface"].state == "damaged" and "w600k_r50.onnx" in states["insightface"].message
    assert states["base"].state == "installed"
    # Reinstalling the pack repairs exactly the damaged files.
    report = packs.install_pack(tiny_pack)
    assert report.copied == 2
    assert {s.state for r, s in _states().items() if r not in ("annotators", "speed_lora")} == {"installed"}


def test_a_truncated_safetensors_file_not_installed_by_the_app_shows_damaged(raw_tiny_models, tmp_path) -> None:
    single = tmp_path / "fine-tune.safetensors"
    data = raw_tiny_models["single"]["base"].read_bytes()
    single.write_bytes(data[: len(data) // 2])
    settings = model_settings.ModelSettings().with_model("base", model_settings.ModelSpec(str(single),
                                                                          str(raw_tiny_models["folders"]["base"])))
    state = manager.role_state("base", settings)
    assert state.state == "damaged" and "truncated" in state.message


def test_a_model_in_the_hugging_face_cache_is_used_where_it_is(raw_tiny_models, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--lllyasviel--control_v11f1e_sd15_tile"
    shutil.copytree(raw_tiny_models["folders"]["light_controlnet"], repo / "snapshots" / "abc123")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    before = tree(models_dir())
    # Not chosen yet: the manager says the suggested model is already in the cache.
    assert _states()["light_controlnet"].cached_default == "lllyasviel/control_v11f1e_sd15_tile"
    state = manager.set_model("light_controlnet", "lllyasviel/control_v11f1e_sd15_tile")
    assert state.state == "installed" and state.in_hf_cache and state.path == repo / "snapshots" / "abc123"
    assert state.sha256 is None or len(state.sha256) == 64
    assert tree(models_dir()) == before  # nothing copied
    assert model_settings.load_settings().models["light_controlnet"].source == "lllyasviel/control_v11f1e_sd15_tile"


def test_choose_another_base_checkpoint(raw_tiny_models, tmp_path) -> None:
    single = raw_tiny_models["single"]["base"]
    state = manager.set_model("base", str(single), config=str(raw_tiny_models["folders"]["base"]))
    assert state.state == "installed" and state.kind == "single_file" and state.size == single.stat().st_size
    with pytest.raises(ModelMissingError):
        manager.set_model("base", str(tmp_path / "nowhere.safetensors"))
    assert model_settings.load_settings().models["base"].source == str(single.resolve())
    folder = manager.set_model("base", str(raw_tiny_models["folders"]["base"]))
    assert folder.kind == "folder" and folder.sha256 is None  # not installed by the app: hashed on request


def test_licence_acceptance_is_recorded_once(tiny_pack) -> None:
    from megaportrait_desktop.core import licences

    packs.install_pack(tiny_pack)
    state = _states()["insightface"]
    with pytest.raises(licences.LicenceNotAcceptedError, match="non-commercial.*accept-licence insightface"):
        licences.require_accepted("insightface", state.licence)
    licences.accept("insightface", state.licence)
    assert _states()["insightface"].licence_accepted
    licences.require_accepted("insightface", state.licence)
    assert licences.is_accepted("base", _states()["base"].licence)  # permissive: nothing to accept


def test_insightface_asks_for_its_licence_before_first_use(tiny_pack) -> None:
    from megaportrait_desktop.core import licences
    from megaportrait_desktop.core.face import require_buffalo_l

    packs.install_pack(tiny_pack)
    with pytest.raises(licences.LicenceNotAcceptedError, match="non-commercial"):
        require_buffalo_l(None, "detection")
    licences.accept("insightface", licences.licence_of("insightface", manager.role_state("insightface").path))
    assert require_buffalo_l(None, "detection").name == "det_10g.onnx"


def test_a_pack_model_with_a_restrictive_licence_is_used_only_once_accepted(tiny_pack, tmp_path) -> None:
    import json

    from megaportrait_desktop.core import licences

    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack, pack)
    data = json.loads((pack / "manifest.json").read_text())
    for entry in data["models"]:
        if entry["role"] == "detail_controlnet":
            entry["licence"] = {"id": "cc-by-nc-4.0"}
    (pack / "manifest.json").write_text(json.dumps(data))
    packs.install_pack(pack)
    state = _states()["detail_controlnet"]
    assert state.licence.name == "CC BY-NC 4.0" and not state.licence_accepted
    with pytest.raises(licences.LicenceNotAcceptedError, match="detail_controlnet.*CC BY-NC"):
        models.resolve_all(model_settings.load_settings())
    licences.accept("detail_controlnet", state.licence)
    assert set(models.resolve_all(model_settings.load_settings())) == set(model_settings.ROLES)
