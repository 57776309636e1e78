"""Harmonization Net: an inpaint-ControlNet pass over the seam band and, at low strength, the face.

Works in crop space on the pasted image: the inpaint ControlNet repaints the band around the mask
edge and the face (control image: the pasted crop with that region blanked), and the tile ControlNet
(the light role's model), fed the pasted crop itself, keeps the content while the seam is repainted
(``harmonize_tile_weight``; 0 leaves it out). The result is kept in
full on the seam band and at ``face_harmonize`` on the face. :func:`composite` writes it into the
full-resolution image only inside the region, so every pixel outside stays bit-identical.
"""

from __future__ import annotations

import numpy as np
import torch

from ..masks import feather, seam_band
from ..progress import Reporter
from ..request import DiffusionParams, HarmonizeParams
from .control import inpaint_condition
from .devices import generator, out_of_memory_as_message
from .quality import stage_plan
from .runtime import LoadedModels, output_to_float, step_callback, to_pil
from .sampler import to_device


def blend_weight(mask: np.ndarray, harmonize: HarmonizeParams, params: DiffusionParams) -> np.ndarray:
    """Per-pixel share of the inpainted image to keep (float32 ``[0, 1]``, crop space).

    ``harmonize.strength`` on the seam band (softened by a quarter of its width), times
    ``face_harmonize`` inside the face; 0 elsewhere, so outside the band and face nothing changes.
    """
    band = seam_band(mask, harmonize.seam_width)
    band = np.minimum(feather(band, harmonize.seam_width / 4), band > 0) if harmonize.seam_width > 0 else band
    face = (mask > 0).astype(np.float32) * params.face_harmonize
    return (np.maximum(band, face) * harmonize.strength).astype(np.float32)


def harmonize(models: LoadedModels, pasted: np.ndarray, weight: np.ndarray, params: DiffusionParams, steps: int,
              seed: int, reporter: Reporter) -> np.ndarray:
    """The pasted crop (float32 RGB) after the inpaint pass, blended by ``weight``."""
    region = (weight > 0).astype(np.float32)
    if not region.any():
        return pasted.copy()
    models.set_lora_scale(0.0)  # harmonising is about the reference's look, not the identity
    plan = stage_plan(params, steps, params.harmonize_denoise)
    size = pasted.shape[0]
    device = models.choice.device
    pixels = to_device(torch.from_numpy(np.ascontiguousarray(pasted, np.float32)), device)
    cond = inpaint_condition(pixels * 2.0 - 1.0, to_device(torch.from_numpy(region), device))
    cond = cond.permute(2, 0, 1)[None].contiguous().to(models.choice.dtype)
    image = to_pil(pasted)
    roles, control, scale = ("inpaint_controlnet",), cond, params.inpaint_control_weight
    if params.harmonize_tile_weight > 0:
        roles, control = (*roles, "light_controlnet"), [cond, image]
        scale = [params.inpaint_control_weight, params.harmonize_tile_weight]
    callback = step_callback(reporter, "harmonize", "Harmonising the seam", params.preview_every,
                             lambda p: p.num_timesteps)
    with out_of_memory_as_message(models.choice, "harmonising the seam"), torch.inference_mode():
        out = models.generate(
            "inpaint", roles, prompt=params.prompt, negative_prompt=params.negative_prompt, image=image,
            mask_image=to_pil(np.repeat(region[:, :, None], 3, axis=2)), control_image=control,
            strength=params.harmonize_denoise, num_inference_steps=plan.steps, guidance_scale=plan.guidance,
            scheduler=plan.scheduler, controlnet_conditioning_scale=scale, height=size, width=size,
            generator=generator(models.choice.device, seed + 3), output_type="np", callback_on_step_end=callback,
            on_prepare=lambda text: reporter("harmonize", 0, 1, text))
    generated = output_to_float(out)[0]
    return pasted + weight[:, :, None] * (generated - pasted)


def composite(reference: np.ndarray, new: np.ndarray, region: np.ndarray) -> np.ndarray:
    """``reference`` (any dtype) with ``new`` (same dtype) written only where ``region`` is true."""
    out = reference.copy()
    out[region] = new[region]
    return out
