"""Final and draft quality: how many steps a stage runs, at what guidance, with which sampler.

Final runs the scheduled ``steps`` with UniPC (img2img runs the last ``steps × denoise`` of them).
Draft runs ``draft_steps`` denoising steps a stage with a distilled speed LoRA (LCM-LoRA or Hyper-SD
with diffusers' ``LCMScheduler``, TCD-LoRA with ``TCDScheduler``), usually without classifier-free
guidance: a quarter-second portrait on a GPU, and the diffusion result live under the sliders.
What a draft looks like depends on the speed LoRA; none was judged here (no real weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..request import DiffusionParams

#: The samplers a stage can run, by name (diffusers' scheduler classes).
SCHEDULERS = {"unipc": "UniPCMultistepScheduler", "lcm": "LCMScheduler", "tcd": "TCDScheduler"}
#: LCM and TCD pick their few timesteps from the 50 their LoRA was distilled on.
DISTILLED_STEPS = 50


@dataclass(frozen=True)
class StagePlan:
    """One stage call: scheduled steps (img2img runs ``steps × denoise`` of them), guidance, sampler."""

    steps: int
    guidance: float
    scheduler: str
    draft: bool


def stage_plan(params: DiffusionParams, steps: int, denoise: float) -> StagePlan:
    """The plan for a stage of ``denoise`` strength at the request's quality."""
    if params.quality != "draft":
        return StagePlan(steps_for(steps, denoise), params.guidance_scale, "unipc", False)
    wanted = params.draft_steps
    scheduled = math.ceil(wanted / max(denoise, 1e-3))
    while int(scheduled * denoise) < wanted:  # diffusers runs int(scheduled × denoise) of them
        scheduled += 1
    return StagePlan(min(scheduled, DISTILLED_STEPS), params.draft_guidance, params.draft_scheduler, True)


def steps_for(steps: int, denoise: float) -> int:
    """Scheduler steps so an img2img pass of ``denoise`` runs at least one step.

    diffusers runs ``int(steps · denoise)`` steps; a low denoise with few steps would run none.
    """
    return max(int(steps), int(np.ceil(1.0 / max(denoise, 1e-3))))
