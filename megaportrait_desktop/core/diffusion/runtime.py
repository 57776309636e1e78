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
from .quality import SCHEDULERS

LORA_ADAPTER = "identity"
#: The speed LoRA's adapter (draft quality), folded or run next to the identity LoRA.
SPEED_ADAPTER = "speed"

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
    #: The speed LoRA (draft quality) and the scale it runs at next (1 in a draft, 0 in a final run).
    speed_lora: str | None = None
    speed_scale: float = 0.0
    #: The fast path over these models (CUDA graphs, folded LoRA); ``None``: stock diffusers calls.
    fast: FastRuntime | None = None
    _pipes: dict[str, Any] = field(default_factory=dict)
    #: The LoRAs loaded as peft adapters (the stock path's form), and the scales they are set to.
    _adapters: dict[str, str] | None = None
    _adapter_scales: dict[str, float] | None = None

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
        _check_lora(path, "identity LoRA", "train one with train-identity")
        self._changed_loras()
        self.lora = None
        if path is not None:
            self._load_adapters({LORA_ADAPTER: str(path)})  # a damaged file fails here, whichever path runs next
            self.lora = str(path)

    def set_speed_lora(self, path: str | None) -> None:
        """Use the speed LoRA at ``path`` for draft calls (``None``: none), beside the identity LoRA."""
        if path == self.speed_lora:
            return
        _check_lora(path, "speed LoRA", "install one in Models → Model Manager")
        self._changed_loras()
        self.speed_lora = None
        if path is not None:
            self._load_adapters({SPEED_ADAPTER: str(path)})
            self.speed_lora = str(path)

    def set_lora_scale(self, scale: float) -> None:
        """The identity LoRA's scale for the next :meth:`generate` calls."""
        self.lora_scale = float(scale)

    def set_draft(self, draft: bool) -> None:
        """Draft calls run the speed LoRA at full scale; final calls without it."""
        if draft and self.speed_lora is None:
            raise ModelMissingError("Draft quality needs a speed LoRA (LCM-LoRA, Hyper-SD or TCD for SD 1.5); "
                                    "install one in Models → Model Manager, or run at Final quality.")
        self.speed_scale = 1.0 if draft else 0.0

    def _loras(self) -> dict[str, str]:
        return {name: path for name, path in ((LORA_ADAPTER, self.lora), (SPEED_ADAPTER, self.speed_lora)) if path}

    def _scales(self) -> dict[str, float]:
        return {LORA_ADAPTER: self.lora_scale, SPEED_ADAPTER: self.speed_scale}

    def _changed_loras(self) -> None:
        if self.fast is not None:
            self.fast.lora_changed()
        self._unload_adapters()

    def generate(self, kind: str, roles: tuple[str, ...], on_prepare: Callable[[str], None] | None = None,
                 scheduler: str = "unipc", **call: Any) -> np.ndarray:
        """One stage call (``kind``: ``"img2img"`` or ``"inpaint"`` over the ControlNets ``roles``):
        the images of ``pipe(**call)``, from the fast path where it handles the call, else the stock pipeline.

        ``on_prepare(message)`` is told when the fast path is about to record (and compile) a step it has not
        run before, which takes from seconds to minutes.
        """
        pipe = self.prepare(kind, *roles, scheduler=scheduler)
        loras = self._loras()
        if self.fast is not None and self.fast.handles(pipe, kind):
            self.fast.on_prepare = on_prepare
            if loras and self.fast.fused is None:
                self._load_adapters(loras)
                self.fast.take_lora(list(loras))
            self._unload_adapters()  # the fast path folds the LoRAs itself
            self.fast.fold_lora(self._scales())
            return self.fast.generate(pipe, kind, roles, **call)
        if self.fast is not None:
            self.fast.release_lora()
        if loras:
            self._load_adapters(loras)
            scales = {name: self._scales()[name] for name in loras}
            if self._adapter_scales != scales:
                self._lora_pipe().set_adapters(list(scales), adapter_weights=list(scales.values()))
                self._adapter_scales = scales
        return pipe(**call).images

    def _load_adapters(self, loras: dict[str, str]) -> None:
        """Have exactly these LoRAs loaded as peft adapters (adding the ones missing)."""
        loaded = dict(self._adapters or {})
        if any(loras[name] != path for name, path in loaded.items() if name in loras) or set(loaded) - set(loras):
            self._unload_adapters()
            loaded = {}
        for name, path in loras.items():
            if loaded.get(name) != path:
                lora = Path(path)
                self._lora_pipe().load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=name)
                loaded[name] = path
        self._adapters, self._adapter_scales = loaded, None

    def _unload_adapters(self) -> None:
        if self._adapters:
            self._lora_pipe().unload_lora_weights()
        self._adapters, self._adapter_scales = None, None

    def _lora_pipe(self) -> Any:
        """A plain pipeline over the shared UNet and text encoder: LoRA loading needs one, no ControlNet."""
        from diffusers import StableDiffusionPipeline

        if "lora" not in self._pipes:
            c = self.components
            self._pipes["lora"] = StableDiffusionPipeline(
                vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
                scheduler=c["scheduler"], safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        return self._pipes["lora"]

    def pipe(self, kind: str, *roles: str, scheduler: str = "unipc") -> Any:
        """A ControlNet img2img (``kind="img2img"``) or inpaint pipeline over the shared modules, with the
        sampler named (``unipc`` for final quality, ``lcm`` or ``tcd`` for drafts)."""
        import diffusers
        from diffusers import StableDiffusionControlNetImg2ImgPipeline, StableDiffusionControlNetInpaintPipeline
        from diffusers.models.controlnets.multicontrolnet import MultiControlNetModel

        key = f"{kind}:{'+'.join(roles)}:{scheduler}"
        if key in self._pipes:
            return self._pipes[key]
        nets = [self.controlnet(r) for r in roles]
        cls = (StableDiffusionControlNetImg2ImgPipeline if kind == "img2img"
               else StableDiffusionControlNetInpaintPipeline)
        c = self.components
        pipe = cls(vae=c["vae"], text_encoder=c["text_encoder"], tokenizer=c["tokenizer"], unet=c["unet"],
                   controlnet=nets[0] if len(nets) == 1 else MultiControlNetModel(nets),
                   scheduler=getattr(diffusers, SCHEDULERS[scheduler]).from_config(c["scheduler"].config),
                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        self._pipes[key] = pipe
        return pipe

    def prepare(self, kind: str, *roles: str, scheduler: str = "unipc") -> Any:
        """The pipeline for a stage, with CPU offload hooks set for it (they are per pipeline)."""
        pipe = self.pipe(kind, *roles, scheduler=scheduler)
        if self.choice.offload:
            pipe.enable_model_cpu_offload(device=self.choice.device)
        return pipe


def _check_lora(path: str | None, what: str, remedy: str) -> None:
    if path is None:
        return
    lora = Path(path)
    if lora.suffix.lower() != ".safetensors":
        raise UnsafeModelError(f"{lora.name}: the {what} must be a .safetensors file (pickle files can run code "
                               "when loaded).")
    if not lora.is_file():
        raise ModelMissingError(f"The {what} {lora} does not exist; {remedy}.")


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

    from ..imaging import to_uint8

    if image.dtype != np.uint8:
        image = to_uint8(np.ascontiguousarray(image, np.float32))
    return Image.fromarray(np.ascontiguousarray(image))


def output_to_float(images: np.ndarray) -> list[np.ndarray]:
    """Pipeline ``output_type="np"`` batch → list of float32 ``[0, 1]`` images."""
    return [np.clip(np.asarray(img, np.float32), 0.0, 1.0) for img in images]
