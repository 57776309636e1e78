"""The fast path: the stages' diffusers calls, run as captured (and optionally compiled) steps.

What makes stock diffusers slow at 512 px is not arithmetic: the GPU waits for Python to launch
thousands of small kernels a step (an H100 reaches about 40 of its ~790 TFLOP/s). The fast path
keeps the stock models, scheduler and preparation, and changes how a step is issued:

- each stage's ControlNets + UNet + guidance step is one CUDA graph (:mod:`.graphs`), replayed
  every step;
- the identity LoRA is folded into the weights at the stage's scale (:mod:`.lora_fusion`);
- with :attr:`FastOptions.compile` (the app's default), the UNet, ControlNets and VAE are compiled with
  ``torch.compile`` in channels-last first, their artefacts cached on disk (:mod:`.compiled`);
- in low-memory mode, only the ControlNets a stage uses sit on the GPU (:mod:`.controlnet_slots`).

The output matches the stock path's up to kernel rounding (the benchmark measures it), so it is the
default on CUDA; ``ModelSettings.fast_path = "off"`` turns it off.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .graphs import GraphCache, StepGraph
from .lora_fusion import FusedLora
from .sampler import Sampler, denoise_step

log = logging.getLogger("megaportrait.diffusion")

PREPARING = "Preparing the fast path for this step (a few seconds, once per session)"
PREPARING_COMPILED = ("Compiling the models for this GPU: a few minutes the first time, about half a minute at "
                      "later starts (most of it comes from the cache); then each run takes about a second")


@dataclass(frozen=True)
class FastOptions:
    """How the fast path issues its work; none of these changes the result beyond kernel rounding.

    Attributes
    ----------
    graphs:
        Capture each stage's step as a CUDA graph (the main gain; CUDA only).
    compile:
        ``torch.compile`` the UNet, ControlNets and VAE before capturing (fuses the elementwise work;
        the first start compiles for minutes, later starts load the cached artefacts). Implies
        ``channels_last``.
    channels_last:
        Convolution weights and activations in NHWC, the layout Hopper's convolution kernels read
        (in NCHW cuDNN transposes every input: a quarter of an eager step's GPU time).
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
        #: Where a step's second ControlNet runs beside its first (captured steps only; see denoise_step).
        self._side = torch.cuda.Stream(device) if self.graphs.enabled else None
        self.sampler = Sampler(self)
        self.fused: FusedLora | None = None
        self._lora_generation = 0
        self.compile_report: dict[str, Any] = {}
        #: Each step captured so far and how long it took (compiling included, when compiled).
        self.captures: list[dict[str, Any]] = []
        #: Told before a step is recorded for the first time (set per call by :meth:`LoadedModels.generate`).
        self.on_prepare: Callable[[str], None] | None = None
        self._artefacts: Path | None = None
        # Inference state, and one state for compiled code: the train/eval flag changes the traced graph and a
        # parameter's requires_grad is part of the compile cache's key; a training (which ends in eval mode
        # with gradients off) would otherwise make the next start compile again.
        for module in (components["unet"], components["vae"], components["text_encoder"], *controlnets.values()):
            module.eval()
            module.requires_grad_(False)
        if options.channels_last or options.compile:
            for module in (components["unet"], *controlnets.values()):
                module.to(memory_format=torch.channels_last)
            if options.compile:  # eager, the VAE is faster in NCHW; compiled, in channels-last
                components["vae"].to(memory_format=torch.channels_last)
        self.slots = None
        if options.low_memory and controlnets:
            from .controlnet_slots import ControlNetSlots

            self.slots = ControlNetSlots(controlnets, device)
            nets = self.slots.modules
        else:
            nets = controlnets
        self._unet: Any = components["unet"]
        self._nets: dict[str, Any] = dict(nets)
        self._vae_parts: dict[str, Any] = {}
        if options.compile:
            from .compiled import compile_modules

            self._unet, self._nets, self._vae_parts, self.compile_report = compile_modules(
                components["unet"], self._nets, components["vae"], device, cache_dir)

    # ------------------------------------------------------------------------------------------ LoRA

    def take_lora(self, adapters: str | list[str]) -> None:
        """Read the adapters from the peft layers loaded into the UNet and text encoder; the caller then
        unloads those layers (the fast path folds the LoRAs into the weights instead)."""
        self.lora_changed()
        c = self.components
        self.fused = FusedLora([c["unet"], c["text_encoder"]], adapters)

    def lora_changed(self) -> None:
        """Another LoRA, or none: the exact base weights back, the old one forgotten."""
        if self.fused is not None:
            self.fused.restore()
        self.fused = None
        self._lora_generation += 1

    def fold_lora(self, scale: float | dict[str, float]) -> None:
        """The LoRAs (if any) folded into the weights at their scales for the next calls."""
        if self.fused is not None:
            self.fused.apply(scale)

    def release_lora(self) -> None:
        """The exact base weights back (the stock path runs the LoRA as adapters)."""
        if self.fused is not None:
            self.fused.restore()

    def text_weights_token(self) -> tuple:
        """Changes whenever the text encoder's weights may have changed (for the prompt cache): with
        another LoRA, or at another scale of a LoRA that adapts the text encoder."""
        scales = self.fused.scale if self.fused is not None and self.fused.touches(1) else None
        text_scale = tuple(sorted(scales.items())) if scales else None
        return (self._lora_generation, text_scale)

    # ----------------------------------------------------------------------------------------- calls

    @staticmethod
    def handles(pipe: Any, kind: str) -> bool:
        """Whether the fast loop reproduces calls of this pipeline (else the stock pipeline runs them):
        a plain 4-channel UNet and one of the samplers it knows (UniPC, and LCM or TCD for drafts)."""
        from .quality import SCHEDULERS

        return (kind in ("img2img", "inpaint") and pipe.unet.config.in_channels == 4
                and pipe.unet.config.time_cond_proj_dim is None
                and type(pipe.scheduler).__name__ in SCHEDULERS.values())

    def generate(self, pipe: Any, kind: str, roles: tuple[str, ...], **call: Any) -> np.ndarray:
        """What ``pipe(**call).images`` returns, from the fast loop."""
        if self.slots is not None:
            self.slots.load(roles)
        # cuDNN's autotuning stays off (its default), as on the stock path: on an H100 it made every start
        # of the compiled path 6 s longer and warm runs 7 % slower (0.96 s against 0.89 s).
        with self._compiled_vae():
            return self.sampler(pipe, kind, roles, **call)

    @contextlib.contextmanager
    def _compiled_vae(self) -> Iterator[None]:
        """The VAE's compiled encoder and decoder in place for this call only, so diffusers' own encode and
        decode (and the pipelines' latent preparation) run them, and the stock path never sees them."""
        vae = self.components["vae"]
        saved = {name: getattr(vae, name) for name in self._vae_parts}
        for name, part in self._vae_parts.items():
            setattr(vae, name, part)
        try:
            yield
        finally:
            for name, part in saved.items():
                setattr(vae, name, part)

    def step(self, roles: tuple[str, ...], cfg: bool, latents: torch.Tensor, embeds: torch.Tensor,
             controls: list[torch.Tensor]) -> StepGraph:
        """The captured step for these ControlNets and shapes (captured on first use)."""
        slots = self.slots.slot_names(roles) if self.slots is not None else roles
        key = (slots, cfg, tuple(latents.shape), tuple(embeds.shape), tuple(tuple(c.shape) for c in controls),
               latents.dtype)
        fn = functools.partial(denoise_step, self._unet, [self._nets[s] for s in slots], cfg, side=self._side)
        scalar = functools.partial(torch.ones, (), dtype=torch.float32, device=self.device)
        inputs = {"latents": self.layout(latents), "t": torch.zeros((), dtype=torch.long, device=self.device),
                  "embeds": embeds, "controls": [self.layout(c) for c in controls],
                  "scales": [scalar() for _ in roles], "guidance": scalar()}
        new = key not in self.graphs
        if new and self.graphs.enabled and self.on_prepare is not None:
            self.on_prepare(PREPARING_COMPILED if self.options.compile else PREPARING)
        step = self.graphs.get(key, fn, inputs)
        if new and self.graphs.enabled:
            self.captures.append({"step": repr(key), "seconds": step.capture_seconds})
            if self.options.compile:
                self._save_compiled()
        return step

    def layout(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` in the one layout compiled code is built for (contiguous), when compiling.

        Compiled code is specialised to its inputs' strides, and the same input arrives in either layout
        depending on the stage (img2img latents from the channels-last VAE, inpaint latents repeated into
        a new tensor, control images from PIL or from a tensor): one layout keeps one compiled graph.
        Uncompiled, tensors keep the layout the stock pipeline would give them.
        """
        return tensor.contiguous() if self.options.compile else tensor

    def _save_compiled(self) -> None:
        """Keep what was compiled on disk, unless every captured step's artefacts are there already.

        A cache that cannot be written (a full disk, no permission, a damaged manifest) costs the next
        start its compile, never this run: the reason goes to the log and the compile report.
        """
        from .compiled import save_artefacts, saved_steps

        folder = Path(self.compile_report["folder"])
        try:
            if {c["step"] for c in self.captures} <= saved_steps(folder):
                return
            self._artefacts = save_artefacts(folder, self.captures, self._artefacts)
        except (OSError, ValueError) as exc:
            self.compile_report["save_error"] = str(exc)
            log.warning("Could not keep the compiled models in %s (%s); the next start compiles them again.",
                        folder, exc)
