"""Diffusers → original Stable Diffusion (LDM) key layout, for writing single-file checkpoints.

diffusers ships only the other direction (``from_single_file`` converts LDM keys on load). Tests and
benchmarks write their random models as single files to load them through the same code path as a
downloaded ``.safetensors`` checkpoint, so this module maps names the other way. The mapping follows
the block structure from the model's config (any number of blocks and layers per block), not SD 1.5's
hard-coded four.
"""

from __future__ import annotations

import torch

_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def _unet_prefixes(config) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for a UNet or ControlNet's blocks."""
    n, per = len(config.block_out_channels), config.layers_per_block
    pairs: list[tuple[str, str]] = []
    for i in range(n):
        for j in range(per):
            pairs.append((f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{1 + i * (per + 1) + j}.0."))
            pairs.append((f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{1 + i * (per + 1) + j}.1."))
        if i < n - 1:
            pairs.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (per + 1)}.0.op."))
    up_types = getattr(config, "up_block_types", None) or ()
    for i in range(n if up_types else 0):
        has_attention = "CrossAttn" in up_types[i]
        for j in range(per + 1):
            pairs.append((f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{i * (per + 1) + j}.0."))
            pairs.append((f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{i * (per + 1) + j}.1."))
        if i < n - 1:
            pairs.append((f"up_blocks.{i}.upsamplers.0.",
                          f"output_blocks.{i * (per + 1) + per}.{2 if has_attention else 1}."))
    pairs += [("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
              ("mid_block.resnets.1.", "middle_block.2.")]
    pairs += [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
              ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2.")]
    return pairs


def _rename(key: str, pairs: list[tuple[str, str]]) -> str:
    for new, old in pairs:
        if key.startswith(new):
            rest = key[len(new):]
            if ".resnets." in new:
                for a, b in _RESNET:
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a):]
            return old + rest
    raise KeyError(f"no original-layout name for {key}")


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """A diffusers UNet's state dict under ``model.diffusion_model.`` in the original layout."""
    pairs = _unet_prefixes(unet.config)
    return {"model.diffusion_model." + _rename(k, pairs): v for k, v in unet.state_dict().items()}


def controlnet_to_ldm(controlnet) -> dict[str, torch.Tensor]:
    """A diffusers ControlNet's state dict in the original ``control_v11*`` layout (``control_model.``)."""
    pairs = _unet_prefixes(controlnet.config)
    blocks = len(controlnet.controlnet_cond_embedding.blocks)
    pairs += [("controlnet_cond_embedding.conv_in.", "input_hint_block.0."),
              ("controlnet_cond_embedding.conv_out.", f"input_hint_block.{2 * (blocks + 1)}."),
              ("controlnet_mid_block.", "middle_block_out.0.")]
    pairs += [(f"controlnet_cond_embedding.blocks.{i}.", f"input_hint_block.{2 * (i + 1)}.") for i in range(blocks)]
    pairs += [(f"controlnet_down_blocks.{i}.", f"zero_convs.{i}.0.")
              for i in range(len(controlnet.controlnet_down_blocks))]
    # Longest prefix first: "controlnet_cond_embedding.blocks.1" must not match a shorter rule.
    pairs.sort(key=lambda p: -len(p[0]))
    return {"control_model." + _rename(k, pairs): v for k, v in controlnet.state_dict().items()}


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """A diffusers AutoencoderKL's state dict under ``first_stage_model.`` in the original layout."""
    n = len(vae.config.block_out_channels)
    pairs: list[tuple[str, str]] = []
    for i in range(n):
        pairs.append((f"encoder.down_blocks.{i}.resnets.", f"encoder.down.{i}.block."))
        pairs.append((f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."))
        pairs.append((f"decoder.up_blocks.{i}.resnets.", f"decoder.up.{n - 1 - i}.block."))
        pairs.append((f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{n - 1 - i}.upsample."))
    for part in ("encoder", "decoder"):
        pairs += [(f"{part}.mid_block.resnets.0.", f"{part}.mid.block_1."),
                  (f"{part}.mid_block.resnets.1.", f"{part}.mid.block_2."),
                  (f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1."),
                  (f"{part}.conv_norm_out.", f"{part}.norm_out.")]
    attention = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}
    out = {}
    for key, value in vae.state_dict().items():
        new = key
        for a, b in pairs:
            if key.startswith(a):
                new = b + key[len(a):]
                break
        new = new.replace("conv_shortcut.", "nin_shortcut.")
        if ".mid.attn_1." in new:
            head, tail = new.split(".mid.attn_1.")
            for a, b in attention.items():
                if tail.startswith(a):
                    tail = b + tail[len(a):]
            new = f"{head}.mid.attn_1.{tail}"
            # The original attention uses 1×1 convolutions where diffusers uses linear layers.
            if tail.endswith("weight") and value.ndim == 2:
                value = value[:, :, None, None]
        out["first_stage_model." + new] = value
    return out


def text_encoder_to_ldm(text_encoder) -> dict[str, torch.Tensor]:
    """The CLIP text encoder under ``cond_stage_model.transformer.text_model.`` (SD 1.x layout)."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else "text_model." + key
        out["cond_stage_model.transformer." + key] = value
    return out


def base_to_ldm(unet, vae, text_encoder) -> dict[str, torch.Tensor]:
    """One SD 1.x checkpoint dictionary: UNet, VAE and text encoder in the original layout."""
    return {**unet_to_ldm(unet), **vae_to_ldm(vae), **text_encoder_to_ldm(text_encoder)}
