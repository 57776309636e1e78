"""Identity LoRA training: weights change, files reload and reproduce, same seed same LoRA, cancel and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from megaportrait_desktop.core.diffusion.training import CHECKPOINT_FILE, TrainingParams, train_identity
from megaportrait_desktop.core.errors import Cancelled
from megaportrait_desktop.core.progress import CancelToken, Reporter

from .conftest import CROP


def _params(**changes) -> TrainingParams:
    base = dict(steps=4, resolution=CROP, rank=4, learning_rate=1e-3, seed=0, checkpoint_every=2)
    return TrainingParams(**{**base, **changes})


def test_training_changes_the_lora_weights_and_leaves_the_base_untouched(engine, trained_lora) -> None:
    state = load_file(str(trained_lora.lora_path))
    ups = [v for k, v in state.items() if k.endswith("lora.up.weight")]
    assert ups and all(k.startswith("unet.") for k in state)
    # peft starts every LoRA "up" matrix at zero: non-zero means the steps trained it.
    assert sum(float(u.abs().sum()) for u in ups) > 0
    assert len(trained_lora.losses) == 4 and all(np.isfinite(trained_lora.losses))
    unet = engine.models(roles=("base",)).components["unet"]
    assert not any("lora" in name for name, _ in unet.named_parameters())


def test_saved_lora_reloads_and_reproduces_the_same_output(engine, single_file_engine, trained_lora,
                                                            reference_crop) -> None:
    from megaportrait_desktop.core.diffusion.pair import ImageSettings, generate_pair
    from megaportrait_desktop.core.request import DiffusionParams

    params = DiffusionParams(guidance_scale=1.0, preview_every=0)
    setting = ImageSettings(lora_scale=1.0, denoise=0.75, control=1.0)
    control = np.zeros_like(reference_crop)

    def with_lora(eng, lora) -> np.ndarray:
        models = eng.models()
        models.set_lora(None if lora is None else str(lora))
        image, _ = generate_pair(models, reference_crop, control, setting, ImageSettings(0.0, 0.5, 1.0), params,
                                 steps=4, seed=3, reporter=Reporter())
        return image  # the image made at LoRA scale 1

    first = with_lora(engine, trained_lora.lora_path)
    engine.models().set_lora(None)
    # A fresh load of the same weights (as single files) with the saved LoRA gives the same image.
    again = with_lora(single_file_engine, trained_lora.lora_path)
    np.testing.assert_allclose(again, first, atol=1e-5)
    # The kohya/A1111 export loads through diffusers too and gives the same image.
    kohya = with_lora(single_file_engine, trained_lora.kohya_path)
    np.testing.assert_allclose(kohya, first, atol=1e-4)
    single_file_engine.models().set_lora(None)
    plain = with_lora(single_file_engine, None)
    assert np.abs(plain - first).max() > 1e-3  # the LoRA really changes the output


def test_kohya_export_has_the_keys_other_tools_load(trained_lora) -> None:
    state = load_file(str(trained_lora.kohya_path))
    downs = [k for k in state if k.endswith(".lora_down.weight")]
    assert downs and all(k.startswith("lora_unet_") for k in downs)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight" in state
    for key in downs:
        assert key.replace(".lora_down.weight", ".alpha") in state
        assert key.replace("lora_down", "lora_up") in state


def test_same_seed_gives_the_same_lora(engine, reference_crop, tmp_path) -> None:
    components = engine.models(roles=("base",)).components
    choice = engine.device()
    runs = [train_identity([reference_crop], components, tmp_path / f"run{i}", _params(seed=seed), choice)
            for i, seed in enumerate((5, 5, 6))]
    first, second, other = (load_file(str(r.lora_path)) for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_cancel_stops_within_one_step_and_training_resumes_from_the_checkpoint(engine, reference_crop,
                                                                                tmp_path) -> None:
    components = engine.models(roles=("base",)).components
    choice = engine.device()
    params = _params(steps=6, train_text_encoder=True)
    whole = train_identity([reference_crop], components, tmp_path / "whole", params, choice)

    token = CancelToken()
    seen: list[int] = []

    def on_progress(progress) -> None:
        if progress.stage == "train" and progress.step:
            seen.append(progress.step)
            if progress.step == 2:
                token.cancel()

    out = tmp_path / "interrupted"
    with pytest.raises(Cancelled):
        train_identity([reference_crop], components, out, params, choice, Reporter(on_progress, token))
    assert seen == [1, 2]  # the step after the cancel finished, its report raised: nothing more ran
    assert (out / CHECKPOINT_FILE).exists()

    resumed = train_identity([reference_crop], components, out, params, choice)
    assert resumed.resumed_from == 3
    assert not (out / CHECKPOINT_FILE).exists()
    a, b = load_file(str(whole.lora_path)), load_file(str(resumed.lora_path))
    assert a.keys() == b.keys() and any(k.startswith("text_encoder.") for k in a)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(resumed.losses, whole.losses, rtol=1e-5)


def test_small_gpu_mode_checkpoints_activations_and_trains_the_same_lora(engine, reference_crop, tmp_path) -> None:
    from dataclasses import replace

    components = engine.models(roles=("base",)).components
    choice = engine.device()
    plain = train_identity([reference_crop], components, tmp_path / "plain", _params(steps=2), choice)
    small = train_identity([reference_crop], components, tmp_path / "small", _params(steps=2),
                           replace(choice, offload=True))
    assert not components["unet"].is_gradient_checkpointing  # switched back off afterwards
    a, b = load_file(str(plain.lora_path)), load_file(str(small.lora_path))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
