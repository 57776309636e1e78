"""The fast path on CUDA with tiny models: captured steps, graphed training, compiled steps and their cache.

Marked ``gpu`` (skipped by default and where there is no CUDA). In half precision the two paths run
different kernels (cuDNN autotuning, the folded LoRA), so images agree within a few 8-bit levels;
the SD 1.5-sized comparison is in ``benchmarks/bench_speed.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from megaportrait_desktop.core.diffusion.fast import FastOptions, FastRuntime

from .conftest import CROP
from .test_fast import _stages

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def cuda_models(tiny_models):
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec

    settings = ModelSettings(models={r: ModelSpec(str(p)) for r, p in tiny_models["folders"].items()},
                             device="cuda", fast_path="off")
    return DiffusionEngine(settings).models()


def _levels(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(np.rint(a * 255) - np.rint(b * 255)).max())


@pytest.mark.parametrize("options", [FastOptions(), FastOptions(channels_last=True), FastOptions(low_memory=True),
                                     FastOptions(compile=True)], ids=["graphs", "channels-last", "low-memory",
                                                                      "compiled"])
def test_captured_steps_give_the_stock_images(cuda_models, reference_crop, trained_lora, options, tmp_path) -> None:
    from megaportrait_desktop.core.request import DiffusionParams

    models = cuda_models
    models.set_lora(str(trained_lora.lora_path))
    params = DiffusionParams(guidance_scale=2.0, preview_every=2)
    stock, stock_reports = _stages(models, reference_crop, params)
    nets = dict(models.controlnets)
    try:
        models.fast = FastRuntime(models.components, models.controlnets, models.choice.device, options, tmp_path)
        first, reports = _stages(models, reference_crop, params)
        # One step per signature; in low-memory mode Shading and Harmonization share their two slots.
        signatures = 3 if options.low_memory else 4
        assert len(models.fast.graphs) == signatures
        assert all(s.graph is not None for s in models.fast.graphs._graphs.values())
        again, again_reports = _stages(models, reference_crop, params)  # replays only
        assert len(models.fast.captures) == signatures
    finally:
        if models.fast is not None:
            models.fast.release_lora()
        models.fast = None
        for net in nets.values():
            net.to(models.choice.device)
    # The first run tells the user once per new step that it is preparing it; otherwise the same progress.
    assert sum(notice for *_, notice in reports) == signatures
    assert [r for r in reports if not r[-1]] == stock_reports
    assert again_reports == stock_reports
    for name in stock:
        assert np.array_equal(first[name], again[name]), name  # a replay is deterministic
        assert _levels(stock[name], first[name]) <= 3, name
    if options.compile:
        from megaportrait_desktop.core.diffusion.compiled import saved_steps

        folder = next(p.parent for p in tmp_path.rglob("manifest.json"))
        assert len(saved_steps(folder)) == 4 and len(list(folder.glob("*.bin"))) == 1  # one file, every step


def test_graphed_training_trains_like_the_stock_loop(cuda_models, reference_crop, tmp_path) -> None:
    from safetensors.torch import load_file

    from megaportrait_desktop.core.diffusion.training import TrainingParams, train_identity

    models = cuda_models
    models.set_lora(None)
    params = TrainingParams(steps=12, resolution=CROP, rank=4, learning_rate=1e-2, seed=0)
    runs = {}
    for fast in (False, True):
        runs[fast] = train_identity([reference_crop], models.components, tmp_path / str(fast), params,
                                    models.choice, fast=fast)
    stock, graphed = runs[False], runs[True]
    assert len(graphed.losses) == len(stock.losses) == 12
    # Same batches and optimiser; only kernel choices differ, so the losses track each other.
    np.testing.assert_allclose(graphed.losses, stock.losses, rtol=0.05, atol=1e-3)
    a, b = load_file(str(stock.lora_path)), load_file(str(graphed.lora_path))
    assert a.keys() == b.keys()
    diff = sum(float((a[k] - b[k]).norm()) for k in a) / sum(float(a[k].norm()) for k in a)
    assert diff < 0.05


def test_an_unusable_compile_cache_costs_the_next_start_not_this_run(cuda_models, reference_crop, tmp_path) -> None:
    """A file where the cache folder should be: the compiled path neither loads nor saves artefacts, says why in
    its report, and still gives the stock path's images."""
    from megaportrait_desktop.core.request import DiffusionParams

    models = cuda_models
    models.set_lora(None)
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    stock, _ = _stages(models, reference_crop, params)
    blocked = tmp_path / "cache"
    blocked.write_text("not a folder")
    nets = dict(models.controlnets)
    try:
        models.fast = FastRuntime(models.components, models.controlnets, models.choice.device,
                                  FastOptions(compile=True), blocked)
        fast, _ = _stages(models, reference_crop, params)
        report = models.fast.compile_report
    finally:
        models.fast = None
        for net in nets.values():
            net.to(models.choice.device)
    assert report["cache_error"] and report["save_error"]
    assert blocked.read_text() == "not a folder"
    for name in stock:
        assert _levels(stock[name], fast[name]) <= 3, name
