"""Identity Net, generation: the image pair A (reference-like) and B (source-like).

Both are img2img passes over the reference face crop, conditioned on its face geometry through the
face ControlNet, with the identity LoRA at some scale. Each image has three settings: LoRA scale,
denoising strength and ControlNet weight (:class:`ImageSettings`); low values keep the reference's
light and colour, high ones bring in the client. When A and B share all three, they are made in one
batched pass (two seeds), otherwise in two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..progress import Reporter
from ..request import DiffusionParams, IdentityParams
from .devices import generator, out_of_memory_as_message
from .quality import stage_plan
from .runtime import LoadedModels, output_to_float, step_callback, to_pil


@dataclass(frozen=True)
class ImageSettings:
    """One image of the pair: LoRA scale, img2img denoising strength, face-ControlNet weight."""

    lora_scale: float
    denoise: float
    control: float


def pair_settings(identity: IdentityParams, params: DiffusionParams) -> tuple[ImageSettings, ImageSettings]:
    """A's and B's settings: explicit values where set, else derived from the identity weights."""

    def settings(weight: float, lora: float | None, denoise: float | None, control: float | None) -> ImageSettings:
        derived = params.denoise_min + weight * (params.denoise_max - params.denoise_min)
        return ImageSettings(lora_scale=weight if lora is None else lora,
                             denoise=derived if denoise is None else denoise,
                             control=params.face_control_weight if control is None else control)

    return (settings(identity.a_strength, params.a_lora_scale, params.a_denoise, params.a_control),
            settings(identity.b_strength, params.b_lora_scale, params.b_denoise, params.b_control))


def generate_pair(models: LoadedModels, crop: np.ndarray, control: np.ndarray, a: ImageSettings,
                  b: ImageSettings, params: DiffusionParams, steps: int, seed: int,
                  reporter: Reporter) -> tuple[np.ndarray, np.ndarray]:
    """A and B (float32 RGB ``[0, 1]``, the crop's size) from the reference crop and its control image.

    A uses ``seed``, B ``seed + 1``, batched or not, so the batching does not change which noise each gets.
    """
    size = crop.shape[0]
    image, control_image = to_pil(crop), to_pil(control)
    device = models.choice.device

    def call(settings: list[ImageSettings], seeds: list[int], label: str) -> list[np.ndarray]:
        s = settings[0]
        models.set_lora_scale(s.lora_scale)
        plan = stage_plan(params, steps, s.denoise)
        callback = step_callback(reporter, "identity", f"Generating {label}", params.preview_every,
                                 lambda p: p.num_timesteps)
        with out_of_memory_as_message(models.choice, f"generating {label}"), torch.inference_mode():
            out = models.generate(
                "img2img", ("face_controlnet",), prompt=[params.prompt] * len(seeds),
                negative_prompt=[params.negative_prompt] * len(seeds), image=[image] * len(seeds),
                control_image=[control_image] * len(seeds), strength=s.denoise, num_inference_steps=plan.steps,
                guidance_scale=plan.guidance, scheduler=plan.scheduler, controlnet_conditioning_scale=s.control,
                height=size,
                width=size, generator=[generator(device, sd) for sd in seeds], output_type="np",
                callback_on_step_end=callback,
                on_prepare=lambda text: reporter("identity", 0, 1, text))
        return output_to_float(out)

    if a == b:
        img_a, img_b = call([a, b], [seed, seed + 1], "A and B")
    else:
        (img_a,) = call([a], [seed], "A (reference-like)")
        (img_b,) = call([b], [seed + 1], "B (source-like)")
    return img_a, img_b
