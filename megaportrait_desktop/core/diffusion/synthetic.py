"""Stable Diffusion 1.5-shaped models with random weights, built from configs in code.

No weights can be downloaded where the tests and benchmarks run, so both build their models here
(as diffusers' own tests do with ``get_dummy_components()``): ``"tiny"`` shapes for CPU tests in
seconds, ``"sd15"`` shapes (UNet with cross-attention 768, the SD VAE, a CLIP-L-sized text encoder,
ControlNets cloned from the UNet) for benchmarks. :func:`save_diffusers` and :func:`save_single_file`
write them the way real models ship, so they load through :mod:`.models` like real ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

SHAPES = ("tiny", "sd15")

#: Characters of the tiny tokenizer's vocabulary (byte-level BPE: "</w>" marks a word end).
_TINY_ALPHABET = "abcdefghijklmnopqrstuvwxyz,."
_TINY_MERGES = ("p h", "o t", "ph ot", "s k", "sk s</w>", "e r", "s o", "so n</w>", "p e", "pe r")


@dataclass(frozen=True)
class Shape:
    """Configs of one model family size (diffusers ``config.json`` dictionaries)."""

    unet: dict[str, Any]
    vae: dict[str, Any]
    text: dict[str, Any]
    controlnet_cond_channels: tuple[int, ...]


def shape(name: str) -> Shape:
    """The configs for ``"tiny"`` or ``"sd15"``."""
    if name == "tiny":
        return Shape(
            unet=dict(block_out_channels=(32, 64), layers_per_block=2, sample_size=32, in_channels=4,
                      out_channels=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                      up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                      attention_head_dim=(2, 4), norm_num_groups=32),
            # Four blocks like SD's VAE: latents 1/8 of the image, as the ControlNet hint encoder expects.
            vae=dict(block_out_channels=(32, 32, 32, 32), in_channels=3, out_channels=3, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                     norm_num_groups=32, sample_size=64, layers_per_block=1),
            text=dict(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                      vocab_size=1000, max_position_embeddings=77, bos_token_id=0, eos_token_id=2,
                      pad_token_id=1, projection_dim=32),
            # The original ControlNet layout has six hint convolutions (input_hint_block.0 … .14), so
            # even the tiny model keeps four embedding widths: single-file conversion expects them.
            controlnet_cond_channels=(16, 32, 96, 256),
        )
    if name == "sd15":
        return Shape(
            unet=dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, sample_size=64,
                      in_channels=4, out_channels=4,
                      down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                      up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
                      cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32),
            vae=dict(block_out_channels=(128, 256, 512, 512), in_channels=3, out_channels=3, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                     norm_num_groups=32, sample_size=512, layers_per_block=2),
            text=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                      vocab_size=49408, max_position_embeddings=77, bos_token_id=0, eos_token_id=2,
                      pad_token_id=1, projection_dim=768, hidden_act="quick_gelu"),
            controlnet_cond_channels=(16, 32, 96, 256),
        )
    raise ValueError(f"unknown model shape {name!r}; choose one of {', '.join(SHAPES)}")


@dataclass(eq=False)
class Components:
    """A base model's parts plus the four ControlNets of the pipeline, by role."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    controlnets: dict[str, Any]


def write_tokenizer(folder: str | Path) -> Path:
    """Write a tiny CLIP BPE tokenizer (vocab.json, merges.txt) into ``folder``.

    Its ids stay below 100, so it drives a text encoder of any vocabulary size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokens = ["<|startoftext|>", "<|endoftext|>", "!"]
    tokens += list(_TINY_ALPHABET) + [f"{c}</w>" for c in _TINY_ALPHABET]
    tokens += ["".join(m.split()) for m in _TINY_MERGES]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_TINY_MERGES) + "\n", encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
         "unk_token": "<|endoftext|>"}), encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>",
         "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}),
        encoding="utf-8")
    return folder


def build(name: str = "tiny", seed: int = 0, tokenizer_dir: str | Path | None = None,
          device: str | torch.device = "cpu") -> Components:
    """Random-weight components of shape ``name`` (seeded: the same seed gives the same weights).

    The tokenizer is written to ``tokenizer_dir`` (a temporary folder when ``None``). ``device``
    is where the weights are created: initialising SD 1.5-sized models on a GPU takes seconds
    instead of a minute on the CPU.
    """
    import tempfile

    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    spec = shape(name)
    torch.manual_seed(seed)
    with torch.device(device):
        unet = UNet2DConditionModel(**spec.unet)
        vae = AutoencoderKL(**spec.vae)
        text_encoder = CLIPTextModel(CLIPTextConfig(**spec.text))
        controlnets = {}
        for role in ("face_controlnet", "light_controlnet", "detail_controlnet", "inpaint_controlnet"):
            cn = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=spec.controlnet_cond_channels)
            # from_unet copies the UNet and zero-initialises the outputs (a ControlNet before training is
            # a no-op); random outputs make each control signal actually change the image in tests.
            with torch.no_grad():
                for module in [*cn.controlnet_down_blocks, cn.controlnet_mid_block,
                               cn.controlnet_cond_embedding.conv_out]:
                    torch.nn.init.normal_(module.weight, std=0.02)
            controlnets[role] = cn.to(device)
    for model in (unet, vae, text_encoder, *controlnets.values()):
        model.eval()  # as from_pretrained leaves them
    folder = Path(tokenizer_dir) if tokenizer_dir else Path(tempfile.mkdtemp(prefix="mp-tokenizer-"))
    tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer(folder)))
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    return Components(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                      controlnets=controlnets)


def save_diffusers(components: Components, root: str | Path) -> dict[str, Path]:
    """Save as real models ship: a diffusers base folder and one diffusers folder per ControlNet.

    Returns the paths by role (``base``, ``face_controlnet``, …).
    """
    from diffusers import StableDiffusionPipeline

    root = Path(root)
    pipe = StableDiffusionPipeline(vae=components.vae, text_encoder=components.text_encoder,
                                   tokenizer=components.tokenizer, unet=components.unet,
                                   scheduler=components.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    pipe.save_pretrained(root / "base", safe_serialization=True)
    paths = {"base": root / "base"}
    for role, cn in components.controlnets.items():
        cn.save_pretrained(root / role, safe_serialization=True)
        paths[role] = root / role
    return paths


def save_single_file(components: Components, root: str | Path) -> dict[str, Path]:
    """Save each model as one ``.safetensors`` file in the original (LDM / ControlNet) key layout."""
    from safetensors.torch import save_file

    from .ldm_layout import base_to_ldm, controlnet_to_ldm

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {"base": root / "base.safetensors"}
    save_file(_contiguous(base_to_ldm(components.unet, components.vae, components.text_encoder)), paths["base"])
    for role, cn in components.controlnets.items():
        paths[role] = root / f"{role}.safetensors"
        save_file(_contiguous(controlnet_to_ldm(cn)), paths[role])
    return paths


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous() for k, v in state.items()}


def fit_vae(vae: Any, images: list[Any], steps: int = 150, seed: int = 0, lr: float = 2e-3) -> list[float]:
    """Teach a random VAE to reconstruct ``images`` (float32 RGB ``[0, 1]``, same size).

    A random VAE decodes to something unrelated to its input, so no pixel distance between a result
    and its input means anything; a few hundred steps on the test's own crops (and their flips)
    make the autoencoder roughly faithful, as a real SD VAE is. Returns the losses.
    """
    import numpy as np

    batch = torch.from_numpy(np.stack([np.asarray(i, np.float32) for i in images]).transpose(0, 3, 1, 2).copy())
    batch = torch.cat([batch, batch.flip(-1)]) * 2.0 - 1.0
    torch.manual_seed(seed)
    vae.train()
    optimizer = torch.optim.Adam(vae.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        latents = vae.encode(batch).latent_dist.mean
        loss = torch.nn.functional.mse_loss(vae.decode(latents).sample, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    vae.eval()
    vae.requires_grad_(False)
    return losses


def save_speed_lora(shape_name: str, path: str | Path, seed: int = 1, rank: int = 4, std: float = 0.05) -> Path:
    """A random LoRA on the attention layers of a ``shape_name`` UNet, saved as a speed LoRA ships
    (``pytorch_lora_weights.safetensors``, diffusers keys): it loads and stacks like LCM-LoRA, only
    its values are random (draft quality itself is not judged without real weights)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**shape(shape_name).unet)
    unet.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # gaussian init leaves B at zero: a no-op LoRA
                param.normal_(0.0, std)
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    StableDiffusionPipeline.save_lora_weights(folder, unet_lora_layers=get_peft_model_state_dict(unet),
                                              safe_serialization=True)
    return folder / "pytorch_lora_weights.safetensors"
