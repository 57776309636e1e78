"""Single-file checkpoints in the original Stable Diffusion layout load with no network: configs and tokenizer ship."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from megaportrait_desktop.core.diffusion import models
from megaportrait_desktop.core.paths import resources_dir

PROMPTS = [
    "a photo of a cat",
    "portrait photo of a woman, soft window light, 85mm, film grain",
    "RAW photo, (masterpiece), close-up face of an old fisherman; wrinkles & stubble!!",
    "Ünïcödé café — naïve résumé 東京 🙂",
    "sks person, studio lighting,high detail,   8k uhd , dslr",
    "",
    "a " * 100,
]


def test_the_shipped_tokenizer_gives_open_clips_token_ids() -> None:
    open_clip = pytest.importorskip("open_clip")
    from transformers import CLIPTokenizer

    reference = open_clip.tokenizer.SimpleTokenizer()
    ours = CLIPTokenizer.from_pretrained(str(resources_dir() / "sd15" / "base" / "tokenizer"))
    for prompt in PROMPTS:
        expected = reference([prompt], context_length=77)[0].tolist()
        got = ours(prompt, padding="max_length", max_length=77, truncation=True).input_ids
        # open_clip pads with 0, SD's tokenizer with <|endoftext|>; the text tokens and their ends agree.
        n = expected.index(49407) + 1 if 49407 in expected else 77
        assert got[:n] == expected[:n], prompt
    assert len(ours) == 49408


def test_the_shipped_configs_match_the_sd15_model_shape() -> None:
    from megaportrait_desktop.core.diffusion.synthetic import shape

    base = resources_dir() / "sd15" / "base"
    sd15 = shape("sd15")
    unet = json.loads((base / "unet" / "config.json").read_text())
    assert {k: unet[k] for k in ("block_out_channels", "cross_attention_dim", "attention_head_dim")} == {
        "block_out_channels": list(sd15.unet["block_out_channels"]), "cross_attention_dim": 768,
        "attention_head_dim": 8}
    assert json.loads((base / "text_encoder" / "config.json").read_text())["vocab_size"] == 49408
    assert json.loads((base / "vae" / "config.json").read_text())["scaling_factor"] == 0.18215
    cn = json.loads((resources_dir() / "sd15" / "controlnet" / "config.json").read_text())
    assert cn["conditioning_embedding_out_channels"] == list(sd15.controlnet_cond_channels)


def test_a_single_file_with_no_config_uses_the_shipped_configs(raw_tiny_models) -> None:
    resolved = models.resolve("base", str(raw_tiny_models["single"]["base"]))
    assert resolved.kind == "single_file" and resolved.config == resources_dir() / "sd15" / "base"
    cn = models.resolve("light_controlnet", str(raw_tiny_models["single"]["light_controlnet"]))
    assert cn.config == resources_dir() / "sd15" / "controlnet"


def _tiny_shipped(tmp_path, raw_tiny_models):
    """The shipped config folders with the model sizes swapped for the tiny ones (tokenizer, scheduler kept)."""
    shipped = tmp_path / "sd15"
    shutil.copytree(resources_dir() / "sd15", shipped)
    folders = raw_tiny_models["folders"]
    for part in ("unet", "vae", "text_encoder"):
        shutil.copy(folders["base"] / part / "config.json", shipped / "base" / part / "config.json")
    shutil.copy(folders["light_controlnet"] / "config.json", shipped / "controlnet" / "config.json")
    return shipped


def test_a_single_file_checkpoint_loads_with_the_network_off(raw_tiny_models, tmp_path, monkeypatch,
                                                             no_network) -> None:
    shipped = _tiny_shipped(tmp_path, raw_tiny_models)
    monkeypatch.setattr(models, "shipped_config", lambda role: shipped / ("base" if role == "base" else "controlnet"))
    import huggingface_hub.constants

    # Not even thanks to the hub's offline switch: with it off, nothing may try the network either.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    single = raw_tiny_models["single"]
    parts = models.load_base(models.resolve("base", str(single["base"])))
    assert type(parts["tokenizer"]).__name__.startswith("CLIPTokenizer") and len(parts["tokenizer"]) == 49408
    assert type(parts["scheduler"]).__name__ == "PNDMScheduler"
    reference = models.load_base(models.resolve("base", str(raw_tiny_models["folders"]["base"])))
    for part in ("unet", "vae", "text_encoder"):
        a, b = parts[part].state_dict(), reference[part].state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    cn = models.load_controlnet(models.resolve("light_controlnet", str(single["light_controlnet"])))
    assert cn.config.cross_attention_dim == 32
    assert not no_network


@pytest.mark.minutes
@pytest.mark.slow
def test_an_sd15_sized_checkpoint_loads_with_the_shipped_configs(tmp_path, no_network) -> None:
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from megaportrait_desktop.core.diffusion.ldm_layout import base_to_ldm

    base = resources_dir() / "sd15" / "base"
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(json.loads((base / "unet" / "config.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((base / "vae" / "config.json").read_text()))
    text = CLIPTextModel(CLIPTextConfig(**json.loads((base / "text_encoder" / "config.json").read_text())))
    path = tmp_path / "fine-tune.safetensors"
    save_file({k: v.half().contiguous() for k, v in base_to_ldm(unet, vae, text).items()}, path)
    del unet, vae, text
    parts = models.load_base(models.resolve("base", str(path)))
    assert parts["unet"].config.cross_attention_dim == 768 and len(parts["tokenizer"]) == 49408
    assert not no_network
