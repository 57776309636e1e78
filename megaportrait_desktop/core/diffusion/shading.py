"""Shading Net: re-render the face from A's light and B's detail with two ControlNets.

The light map (low-pass of A) drives the light ControlNet (tile), the HF-map of B (on mid-grey)
the detail ControlNet (lineart/softedge/canny); each has its own weight. The img2img pass starts
from their frequency-separation recombination, the classic engine's answer, so the diffusion model
only has to make it photographic. The caller pastes the result back through the face mask.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import classic
from ..progress import Reporter
from ..request import DiffusionParams, ShadingParams
from .devices import generator, out_of_memory_as_message
from .quality import stage_plan
from .runtime import LoadedModels, output_to_float, step_callback, to_pil


def shade(models: LoadedModels, a: np.ndarray, b: np.ndarray, shading: ShadingParams, params: DiffusionParams,
          steps: int, seed: int, reporter: Reporter) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(light_map, hf_map, shaded)``: float32 crops; ``hf_map`` is signed (centred on 0)."""
    light, hf, recombined = classic.shade(a, b, shading)
    hf_control = np.clip(hf * shading.detail_weight + 0.5, 0.0, 1.0)
    models.set_lora_scale(params.shading_lora_scale)
    plan = stage_plan(params, steps, params.shading_denoise)
    size = a.shape[0]
    callback = step_callback(reporter, "shading", "Re-rendering the face with the reference's light",
                             params.preview_every, lambda p: p.num_timesteps)
    with out_of_memory_as_message(models.choice, "re-rendering the face"), torch.inference_mode():
        out = models.generate(
            "img2img", ("light_controlnet", "detail_controlnet"), prompt=params.prompt,
            negative_prompt=params.negative_prompt, image=to_pil(recombined),
            control_image=[to_pil(light), to_pil(hf_control)], strength=params.shading_denoise,
            num_inference_steps=plan.steps, guidance_scale=plan.guidance, scheduler=plan.scheduler,
            controlnet_conditioning_scale=[params.light_control_weight, params.detail_control_weight],
            height=size, width=size, generator=generator(models.choice.device, seed + 2), output_type="np",
            callback_on_step_end=callback,
            on_prepare=lambda text: reporter("shading", 0, 1, text))
    return light, hf, output_to_float(out)[0]
