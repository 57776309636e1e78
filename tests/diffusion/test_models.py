"""Model resolution: diffusers folders, single files, cached repo ids; pickle refused; missing roles named."""

from __future__ import annotations

import shutil

import pytest
import torch

from megaportrait_desktop.core import model_settings
from megaportrait_desktop.core.diffusion import models
from megaportrait_desktop.core.diffusion.models import UnsafeModelError
from megaportrait_desktop.core.errors import ModelMissingError
from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_folder_and_single_file_load_the_same_models(tiny_models) -> None:
    folders, single = tiny_models["folders"], tiny_models["single"]
    from_folder = models.load_base(models.resolve("base", str(folders["base"])))
    resolved = models.resolve("base", ModelSpec(str(single["base"]), config=str(folders["base"])))
    assert resolved.kind == "single_file"
    from_file = models.load_base(resolved)
    for part in ("unet", "vae", "text_encoder"):
        assert _same_weights(from_folder[part], from_file[part]), part
    for role in ("face_controlnet", "inpaint_controlnet"):
        a = models.load_controlnet(models.resolve(role, str(folders[role])))
        b = models.load_controlnet(models.resolve(role, ModelSpec(str(single[role]), config=str(folders[role]))))
        assert _same_weights(a, b), role


def test_repo_id_is_found_in_the_local_hugging_face_cache(tiny_models, tmp_path, monkeypatch) -> None:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    repo = cache / "models--studio--tiny-sd15"
    shutil.copytree(tiny_models["folders"]["base"], repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    resolved = models.resolve("base", "studio/tiny-sd15")
    assert resolved.kind == "folder" and resolved.path.name == "0123abcd"
    assert models.load_base(resolved)["unet"].config.cross_attention_dim == 32
    with pytest.raises(ModelMissingError, match="not in the local Hugging Face cache.*Install"):
        models.resolve("light_controlnet", "lllyasviel/control_v11f1e_sd15_tile")


@pytest.mark.parametrize("name", ["model.ckpt", "model.bin", "model.pt"])
def test_a_pickle_checkpoint_is_refused(tmp_path, name) -> None:
    path = tmp_path / name
    path.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeModelError, match="pickle checkpoint.*only .safetensors"):
        models.resolve("base", str(path))


def test_a_folder_with_only_pickle_weights_is_refused(tiny_models, tmp_path) -> None:
    folder = tmp_path / "cn"
    shutil.copytree(tiny_models["folders"]["face_controlnet"], folder)
    for weights in folder.glob("*.safetensors"):
        weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(UnsafeModelError, match="pickle"):
        models.resolve("face_controlnet", str(folder))


def test_a_missing_role_names_the_role_and_what_to_install(tiny_models) -> None:
    settings = ModelSettings().with_model("base", str(tiny_models["folders"]["base"]))
    with pytest.raises(ModelMissingError, match="No face-geometry ControlNet is set. Install an SD 1.5 face"):
        models.resolve_all(settings)
    status = models.check_all(settings)
    assert status["base"] is None and "No light ControlNet is set" in status["light_controlnet"]
    with pytest.raises(ModelMissingError, match="inpaint ControlNet .* is not on this machine"):
        models.resolve("inpaint_controlnet", "/no/such/control_v11p_sd15_inpaint")


def test_model_settings_live_in_the_config_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MEGAPORTRAIT_CONFIG", str(tmp_path / "cfg"))
    assert model_settings.load_settings() == ModelSettings()
    settings = ModelSettings(device="cpu").with_model("base", ModelSpec("/m/base.safetensors", config="/m/cfg"))
    path = model_settings.save_settings(settings)
    assert path == tmp_path / "cfg" / "models.json"
    assert model_settings.load_settings() == settings


def test_run_without_models_says_which_role_is_missing(photo_files) -> None:
    from megaportrait_desktop.core.pipeline import run
    from megaportrait_desktop.core.request import RunRequest

    request = RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                         engine="diffusion", crop_size=64)
    with pytest.raises(ModelMissingError, match="No base model .* is set"):
        run(request)


def test_device_choice_and_out_of_memory_message() -> None:
    from megaportrait_desktop.core.diffusion.devices import OutOfMemory, choose_device, out_of_memory_as_message
    from megaportrait_desktop.core.errors import RequestError

    choice = choose_device("cpu")
    assert (choice.device.type, choice.dtype, choice.offload) == ("cpu", torch.float32, False)
    if not torch.cuda.is_available():
        assert choose_device("auto").device.type in ("cpu", "mps")
        with pytest.raises(RequestError, match="No CUDA GPU"):
            choose_device("cuda")
    with pytest.raises(OutOfMemory, match="ran out of memory while testing; turn on CPU offload"), \
            out_of_memory_as_message(choice, "testing"):
        raise torch.OutOfMemoryError("CUDA out of memory")
