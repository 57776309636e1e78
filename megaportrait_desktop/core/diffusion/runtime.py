"""Loaded models and the diffusers pipelines the stages run, with progress, previews and cancel.

One :class:`LoadedModels` holds the base components, the ControlNets and the identity LoRA on the
chosen device. Stage pipelines are thin diffusers wrappers built over those shared modules, so the
weights are loaded once per run (or once per session, when the caller keeps the object).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import ModelMissingError
from ..progress import Reporter
from .devices import DeviceChoice
from .fast import FastRuntime
from .models import ResolvedModel, UnsafeModelError, load_base, load_controlnet

LORA_ADAPTER = "identity"

# Linear map from SD 1.x latents to RGB: good enough for a live thumbnail and costs nothing
# (no VAE decode); the same approximation ComfyUI and A1111 use for their cheap previews.
_LATENT_RGB = torch.tensor([[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350],
                            [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]])


@dataclass(eq=False)
class LoadedModels:
    """The base components, ControlNets by role, and the LoRA currently loaded into the UNet."""

    components: dict[str, Any]
    controlnets: dict[str, Any]
    choice: DeviceChoice
    resolved: dict[str, ResolvedModel]
    lora: str | None = None
    #: The LoRA scale the next stage call runs at (applied by the path that runs it).
    lora_scale: float = 1.0
    #: The fast path over these models (CUDA graphs, folded LoRA); ``None``: stock diffusers calls.
    fast: FastRuntime | None = None
    _pipes: dict[str, Any] = field(default_factory=dict)
    #: The LoRA loaded as peft adapters (the stock path's form) and the scale they are set to.
    _adapters: str | None = None
    _adapter_scale: float | None = None

    def controlnet(self, role: str) -> Any:
        if role not in self.controlnets:
            raise ModelMissingError(f"The {role.replace('_', ' ')} was not loaded for this run.")
        return self.controlnets[role]

    def set_lora(self, path: str | None) -> None:
        """Use the identity LoRA at ``path`` (``None``: none); a no-op when it is already in use.

        The stock path runs it as peft adapters. The fast path reads it from those adapters once, folds
        it into the weights per call, and unloads the adapters so its compiled modules keep one shape.
        """
        if path == self.lora:
            return
        if path is not None:
            lora = Path(path)
            if lora.suffix.lower() != ".safetensors":
                raise UnsafeModelError(f"{lora.name}: the identity LoRA must be a .safetensors file (pickle files "
                                       "can run code when loaded).")
            if not lora.is_file():
                raise ModelMissingError(f"The identity LoRA {lora} does not exist; train one with train-identity.")
        if self.fast is not None:
            self.fast.lora_changed()
        self._unload_adapters()
        self.lora = None
        if path is None:
            return
        self._load_adapters(str(path))  # a damaged file fails here, whichever path runs next
        self.lora = str(path)

    def set_lora_scale(self, scale: float) -> None:
        """The identity LoRA's scale for the next :meth:`generate` calls."""
        self.lora_scale = float(scale)

    def generate(self, kind: str, roles: tuple[str, ...], on_prepare: Callable[[str], None] | None = None,
                 **call: Any) -> np.ndarray:
        """One stage call (``kind``: ``"img2img"`` or ``"inpaint"`` over the ControlNets ``roles``):
        the images of ``pipe(**call)``, from the fast path where it handles the call, else the stock pipeline.

        ``on_prepare(message)`` is told when the fast path is about to record (and compile) a step it has not
        run before, which takes from seconds to minutes.
        """
        pipe = self.prepare(kind, *roles)
        if self.fast is not None and self.fast.handles(pipe, kind):
            self.fast.on_prepare = on_prepare
            if self.lora is not None and self.fast.fused is None:
                if self._adapters != self.lora:
                    self._load_adapters(self.lora)
                self.fast.take_lora(LORA_ADAPTER)
            self._unload_adapters()  # the fast path folds the LoRA itself
            self.fast.fold_lora(self.lora_scale)
            return self.fast.generate(pipe, kind, roles, **call)
        if self.fast is not None:
            self.fast.release_lora()
        if self.lora is not None:
            if self._adapters != self.lora:
                self._load_adapters(self.lora)
            if self._adapter_scale != self.lora_scale:
                self._lora_pipe().set_adapters([LORA_ADAPTER], adapter_weights=[self.lora_scale])
                self._adapter_scale = self.lora_scale
        return pipe(**call).images

    def _load_adapters(self, path: str) -> None:
        lora = Path(path)
        self._lora_pipe().load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=LORA_ADAPTER)
        self._adapters, self._adapter_scale = path, None

    def _unload_adapters(self) -> None:
        if self._adapters is not None:
            self._lora_pipe().unload_lora_weights()
            self._adapters, self._adapter_scale = None, None

    def _lora_pipe(self) -> Any:
        """A plain pipeline over the shared UNet and text encoder: LoRA loading needs one, no ControlNet."""
        from diffusers import StableDiffusionPipeline

        if "lora" not in self._pipes:
            c = self.components
            self._pipes["lora"] = StableDiffusionPipeline(
                vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
                scheduler=c["scheduler"], safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        return self._pipes["lora"]

    def pipe(self, kind: str, *roles: str) -> Any:
        """A ControlNet img2img (``kind="img2img"``) or inpaint pipeline over the shared modules."""
        from diffusers import (
            StableDiffusionControlNetImg2ImgPipeline,
            StableDiffusionControlNetInpaintPipeline,
            UniPCMultistepScheduler,
        )
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        key = f"{kind}:{'+'.join(roles)}"
        if key in self._pipes:
            return self._pipes[key]
        nets = [self.controlnet(r) for r in roles]
        cls = (StableDiffusionControlNetImg2ImgPipeline if kind == "img2img"
               else StableDiffusionControlNetInpaintPipeline)
        c = self.components
        pipe = cls(vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
                   controlnet=nets[0] if len(nets) == 1 else MultiControlNetModel(nets),
                   scheduler=UniPCMultistepScheduler.from_config(c["scheduler"].config),
                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        self._pipes[key] = pipe
        return pipe

    def prepare(self, kind: str, *roles: str) -> Any:
        """The pipeline for a stage, with CPU offload hooks set for it (they are per pipeline)."""
        pipe = self.pipe(kind, *roles)
        if self.choice.offload:
            pipe.enable_model_cpu_offload(device=self.choice.device)
        return pipe


def load_models(resolved: dict[str, ResolvedModel], choice: DeviceChoice) -> LoadedModels:
    """Load the resolved roles onto the chosen device (kept on the CPU when offloading)."""
    components = load_base(resolved["base"], dtype=choice.dtype)
    controlnets = {role: load_controlnet(model, dtype=choice.dtype) for role, model in resolved.items()
                   if role != "base"}
    return place(components, controlnets, choice, resolved)


def place(components: dict[str, Any], controlnets: dict[str, Any], choice: DeviceChoice,
          resolved: dict[str, ResolvedModel] | None = None) -> LoadedModels:
    """Models already in memory, cast to the run's dtype and moved to its device (unless offloading),
    with the fast path over them when ``choice`` asks for it (in low-memory mode the ControlNets stay
    in CPU memory)."""
    low_memory = choice.fast is not None and choice.fast.low_memory
    base = [components[n] for n in ("unet", "vae", "text_encoder")]
    for module in base + list(controlnets.values()):
        if module.dtype != choice.dtype:
            module.to(dtype=choice.dtype)
        if not choice.offload and not (low_memory and module not in base):
            module.to(choice.device)
    fast = FastRuntime(components, controlnets, choice.device, choice.fast) if choice.fast is not None else None
    return LoadedModels(components=components, controlnets=controlnets, choice=choice, resolved=resolved or {},
                        fast=fast)


def step_callback(reporter: Reporter, stage: str, message: str, preview_every: int,
                  total: Callable[[Any], int]) -> Callable[..., dict]:
    """A diffusers ``callback_on_step_end`` that reports each step, sends a cheap preview every few
    steps, and raises ``Cancelled`` (through the reporter) so a cancel stops within one step."""

    def callback(pipe: Any, step: int, timestep: Any, kwargs: dict) -> dict:
        preview = None
        if preview_every and (step + 1) % preview_every == 0:
            preview = latent_preview(kwargs["latents"])
        reporter(stage, step + 1, total(pipe), message, preview)
        return {}

    return callback


def latent_preview(latents: torch.Tensor) -> np.ndarray:
    """A small uint8 RGB image of the first latent in the batch (no VAE decode)."""
    lat = latents[0].detach().float().cpu()
    rgb = torch.einsum("chw,cr->hwr", lat[:4], _LATENT_RGB)
    return ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()


def to_pil(image: np.ndarray):
    """float ``[0, 1]`` or uint8 RGB → PIL image (what the pipelines take)."""
    from PIL import Image

    if image.dtype != np.uint8:
        image = np.clip(np.rint(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(image))


def output_to_float(images: np.ndarray) -> list[np.ndarray]:
    """Pipeline ``output_type="np"`` batch → list of float32 ``[0, 1]`` images."""
    return [np.clip(np.asarray(img, np.float32), 0.0, 1.0) for img in images]


def steps_for(steps: int, denoise: float) -> int:
    """Scheduler steps so an img2img pass of ``denoise`` runs at least one step.

    diffusers runs ``int(steps · denoise)`` steps; a low denoise with few steps would run none.
    """
    return max(int(steps), int(np.ceil(1.0 / max(denoise, 1e-3))))
