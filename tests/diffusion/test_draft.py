"""Draft quality on tiny models (CPU): few steps with a speed LoRA and its sampler, stacked on the identity LoRA."""

from __future__ import annotations

import numpy as np
import pytest

from megaportrait_desktop.core.diffusion import synthetic
from megaportrait_desktop.core.diffusion.fast import FastOptions, FastRuntime
from megaportrait_desktop.core.diffusion.quality import stage_plan
from megaportrait_desktop.core.errors import ModelMissingError
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.progress import Reporter
from megaportrait_desktop.core.request import DiffusionParams, RunRequest

from .conftest import CROP


@pytest.fixture(scope="module")
def speed_lora(tmp_path_factory) -> str:
    return str(synthetic.save_speed_lora("tiny", tmp_path_factory.mktemp("speed")))


def _request(photo_files, **diffusion) -> RunRequest:
    params = DiffusionParams(guidance_scale=2.0, preview_every=0, **diffusion)
    return RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                      engine="diffusion", crop_size=CROP, steps=8, seed=7, diffusion=params)


def test_a_draft_stage_runs_its_few_steps_whatever_its_denoise() -> None:
    draft = DiffusionParams(quality="draft", draft_steps=4, draft_guidance=1.0)
    for denoise in (0.3, 0.35, 0.5, 0.75, 1.0):
        plan = stage_plan(draft, 30, denoise)
        assert int(plan.steps * denoise) == 4 and plan.scheduler == "lcm" and plan.guidance == 1.0
    final = stage_plan(DiffusionParams(), 30, 0.5)
    assert (final.steps, final.scheduler, final.draft) == (30, "unipc", False)


def test_a_draft_run_takes_the_speed_lora_and_names_it_in_its_request(engine, photo_files, speed_lora) -> None:
    reports = []
    out = run(_request(photo_files, quality="draft", speed_lora=speed_lora), on_progress=reports.append,
              diffusion=engine)
    assert out.final is not None
    d = out.request.diffusion
    assert d.quality == "draft" and d.speed_lora == speed_lora and len(d.model_sha256["speed_lora"]) == 64
    # Four denoising steps a stage (the pair's two images, Shading, Harmonization), not the final's many.
    steps = [(p.stage, p.total) for p in reports if p.stage in ("identity", "shading", "harmonize") and p.total > 1]
    assert steps and {total for _, total in steps} == {4}
    final = run(_request(photo_files), diffusion=engine)
    assert np.abs(final.stages["shaded"].astype(int) - out.stages["shaded"].astype(int)).mean() > 1


def test_draft_without_a_speed_lora_says_what_to_install(engine, photo_files) -> None:
    with pytest.raises(ModelMissingError, match="speed LoRA"):
        run(_request(photo_files, quality="draft"), diffusion=engine)


def test_the_speed_lora_and_the_identity_lora_stack(engine, photo_files, speed_lora, trained_lora) -> None:
    identity = str(trained_lora.lora_path)
    both = run(_request(photo_files, quality="draft", speed_lora=speed_lora, lora=identity), diffusion=engine)
    speed_only = run(_request(photo_files, quality="draft", speed_lora=speed_lora), diffusion=engine)
    assert both.request.diffusion.model_sha256.keys() >= {"lora", "speed_lora"}
    # B carries the identity LoRA (scale 1 by default) on top of the speed LoRA: it moves with it.
    assert np.abs(both.stages["B"].astype(int) - speed_only.stages["B"].astype(int)).mean() > 0.5
    # Final quality after a draft: the speed LoRA stays loaded but runs at 0, so the final is the plain final.
    after = run(_request(photo_files, lora=identity), diffusion=engine)
    fresh_engine_final = run(_request(photo_files, lora=identity), diffusion=type(engine)(engine.settings))
    assert np.array_equal(after.final.pixels, fresh_engine_final.final.pixels)


def test_draft_fast_loop_matches_the_stock_draft_call(engine, reference_crop, speed_lora, trained_lora) -> None:
    """The draft samplers on the fast loop: without LoRAs bit for bit (same CPU kernels, same random draws
    between LCM steps); with the speed and identity LoRAs folded, within float32 rounding."""
    from megaportrait_desktop.core.diffusion.harmonize import harmonize
    from megaportrait_desktop.core.diffusion.pair import ImageSettings, generate_pair
    from megaportrait_desktop.core.diffusion.shading import shade
    from megaportrait_desktop.core.request import ShadingParams

    models = engine.models()
    control = (reference_crop * 255).astype(np.uint8)
    a, b = ImageSettings(0.3, 0.5, 1.0), ImageSettings(1.0, 0.75, 0.8)

    weight = np.zeros((CROP, CROP), np.float32)
    weight[16:48, 16:48] = 0.7

    def stages(params):
        x, y = generate_pair(models, reference_crop, control, a, b, params, 8, 3, Reporter())
        _, _, shaded = shade(models, x, y, ShadingParams(), params, 8, 3, Reporter())
        return {"A": x, "B": y, "shaded": shaded,
                "harmonized": harmonize(models, shaded, weight, params, 8, 3, Reporter())}

    try:
        for scheduler, guidance in (("lcm", 1.0), ("tcd", 2.0)):
            params = DiffusionParams(quality="draft", draft_scheduler=scheduler, draft_guidance=guidance,
                                     preview_every=0)
            models.set_lora(None)
            models.set_speed_lora(None)  # the sampler alone first: no LoRA at all
            models.fast = None
            stock = stages(params)
            models.fast = FastRuntime(models.components, models.controlnets, models.choice.device, FastOptions())
            fast = stages(params)
            assert all(np.array_equal(stock[k], fast[k]) for k in stock), scheduler
            models.fast = None
        # Both LoRAs: folded on the fast path, peft adapters on the stock path.
        params = DiffusionParams(quality="draft", preview_every=0)
        models.set_lora(str(trained_lora.lora_path))
        models.set_speed_lora(speed_lora)
        models.set_draft(True)
        stock = stages(params)
        models.fast = FastRuntime(models.components, models.controlnets, models.choice.device, FastOptions())
        fast = stages(params)
        assert models.fast.fused is not None and set(models.fast.fused.scale) == {"identity", "speed"}
        for name in stock:
            assert np.abs(stock[name] - fast[name]).max() < 1e-4, name
    finally:
        if models.fast is not None:
            models.fast.release_lora()
        models.fast = None
        models.set_lora(None)
        models.set_speed_lora(None)
        models.speed_scale = 0.0

