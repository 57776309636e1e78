"""The fast path: the stages' diffusers calls, run as captured (and optionally compiled) steps.

What makes stock diffusers slow at 512 px is not arithmetic: the GPU waits for Python to launch
thousands of small kernels a step (an H100 reaches about 40 of its ~790 TFLOP/s). The fast path
keeps the stock models, scheduler and preparation, and changes how a step is issued:

- each stage's ControlNets + UNet + guidance step is one CUDA graph (:mod:`.graphs`), replayed
  every step; cuDNN times its algorithms once, before the capture, and the graph keeps the fastest;
- the identity LoRA is folded into the weights at the stage's scale (:mod:`.lora_fusion`);
- optionally (:attr:`FastOptions.compile`), the UNet and ControlNets are compiled with
  ``torch.compile`` first, their artefacts cached on disk (:mod:`.compiled`);
- in low-memory mode, only the ControlNets a stage uses sit on the GPU (:mod:`.controlnet_slots`).

The output matches the stock path's up to kernel rounding (the benchmark measures it), so it is the
default on CUDA; ``ModelSettings.fast_path = "off"`` turns it off.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .graphs import GraphCache, StepGraph
from .lora_fusion import FusedLora
from .sampler import Sampler, denoise_step


@dataclass(frozen=True)
class FastOptions:
    """How the fast path issues its work; none of these changes the result beyond kernel rounding.

    Attributes
    ----------
    graphs:
        Capture each stage's step as a CUDA graph (the main gain; CUDA only).
    compile:
        ``torch.compile`` the UNet and ControlNets before capturing (fuses elementwise work; the
        first start compiles for minutes, later starts load the cached artefacts).
    channels_last:
        Convolution weights and activations in NHWC, the layout the tensor cores read best.
    low_memory:
        Keep peak GPU memory of the whole pipeline under 8 GiB: ControlNets wait in pinned CPU
        memory and are copied into two GPU slots when a stage needs them.
    """

    graphs: bool = True
    compile: bool = False
    channels_last: bool = False
    low_memory: bool = False


class FastRuntime:
    """Step graphs, the folded LoRA and the sampler over one set of loaded models.

    Parameters
    ----------
    components:
        The base model's parts (``unet``, ``vae``, ``text_encoder``, …), already on ``device``.
    controlnets:
        ControlNets by role (on ``device``, or on the CPU in low-memory mode).
    cache_dir:
        Where compiled artefacts are kept (``None``: the user cache folder).
    """

    def __init__(self, components: dict[str, Any], controlnets: dict[str, Any], device: torch.device,
                 options: FastOptions, cache_dir: Path | None = None) -> None:
        self.components = components
        self.device = device
        self.options = options
        self.graphs = GraphCache(device, options.graphs)
        self.sampler = Sampler(self)
        self.fused: FusedLora | None = None
        self._lora_generation = 0
        self.compile_report: dict[str, Any] = {}
        #: Each step captured so far and how long it took (compiling included, when compiled).
        self.captures: list[dict[str, Any]] = []
        if options.channels_last:
            for module in (components["unet"], components["vae"], *controlnets.values()):
                module.to(memory_format=torch.channels_last)
        self.slots = None
        if options.low_memory and controlnets:
            from .controlnet_slots import ControlNetSlots

            self.slots = ControlNetSlots(controlnets, device)
            nets = self.slots.modules
        else:
            nets = controlnets
        self._unet: Any = components["unet"]
        self._nets: dict[str, Any] = dict(nets)
        if options.compile:
            from .compiled import compile_modules

            self._unet, self._nets, self.compile_report = compile_modules(
                components["unet"], self._nets, device, cache_dir)

    # ------------------------------------------------------------------------------------------ LoRA

    def lora_changed(self) -> None:
        """The peft adapter was loaded, swapped or removed: restore the base weights, fold anew later."""
        if self.fused is not None:
            self.fused.restore()
        self.fused = None
        self._lora_generation += 1

    def fold_lora(self, adapter: str | None, scale: float) -> None:
        """Fold ``adapter`` (loaded as peft layers) into the weights at ``scale``; ``None``: no LoRA."""
        if adapter is None:
            return
        if self.fused is None:
            c = self.components
            self.fused = FusedLora([c["unet"], c["text_encoder"]], adapter)
        self.fused.apply(scale)

    def text_weights_token(self) -> tuple:
        """Changes whenever the text encoder's weights may have changed (for the prompt cache)."""
        return (self._lora_generation, self.fused.scale if self.fused is not None else None)

    def release_lora(self) -> None:
        """Give the stock path its exact base weights and live adapters back."""
        if self.fused is not None:
            self.fused.restore()

    # ----------------------------------------------------------------------------------------- calls

    @staticmethod
    def handles(pipe: Any, kind: str) -> bool:
        """Whether the fast loop reproduces calls of this pipeline (else the stock pipeline runs them):
        a plain 4-channel UNet and a scheduler with UniPC's noise-level helpers."""
        return (kind in ("img2img", "inpaint") and pipe.unet.config.in_channels == 4
                and pipe.unet.config.time_cond_proj_dim is None
                and hasattr(pipe.scheduler, "_sigma_to_alpha_sigma_t"))

    def generate(self, pipe: Any, kind: str, roles: tuple[str, ...], **call: Any) -> np.ndarray:
        """What ``pipe(**call).images`` returns, from the fast loop."""
        if self.slots is not None:
            self.slots.load(roles)
        # cuDNN times its algorithms once per shape, during the warm-up before a capture; the graph keeps
        # the choice. Only for this call: the stock path keeps diffusers' defaults.
        saved = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            return self.sampler(pipe, kind, roles, **call)
        finally:
            torch.backends.cudnn.benchmark = saved

    def step(self, roles: tuple[str, ...], cfg: bool, latents: torch.Tensor, embeds: torch.Tensor,
             controls: list[torch.Tensor]) -> StepGraph:
        """The captured step for these ControlNets and shapes (captured on first use)."""
        slots = self.slots.slot_names(roles) if self.slots is not None else roles
        key = (slots, cfg, tuple(latents.shape), tuple(embeds.shape), tuple(tuple(c.shape) for c in controls),
               latents.dtype)
        fn = functools.partial(denoise_step, self._unet, [self._nets[s] for s in slots], cfg)
        scalar = functools.partial(torch.ones, (), dtype=torch.float32, device=self.device)
        inputs = {"latents": latents, "t": torch.zeros((), dtype=torch.long, device=self.device),
                  "embeds": embeds, "controls": list(controls), "scales": [scalar() for _ in roles],
                  "guidance": scalar()}
        new = key not in self.graphs
        step = self.graphs.get(key, fn, inputs)
        if new and self.graphs.enabled:
            self.captures.append({"step": repr(key), "seconds": step.capture_seconds})
            if self.options.compile:
                from .compiled import save_artefacts

                save_artefacts(Path(self.compile_report["folder"]), repr(key), step.capture_seconds)
        return step
