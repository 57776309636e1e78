"""The fast path on tiny models on the CPU, where its step runs eagerly: same images as the stock pipelines.

On the CPU both paths run the same kernels, so without a LoRA they must agree bit for bit: this pins
the fast loop to diffusers' own (preparation, random draws and their order, scheduler, inpaint blend,
ControlNet sums). With a LoRA the fast path folds it into the weights, which rounds differently in the
last bit of float32. CUDA graphs and compilation are covered by ``test_fast_gpu.py`` and the benchmark.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from megaportrait_desktop.core.diffusion.fast import PREPARING, PREPARING_COMPILED, FastOptions, FastRuntime
from megaportrait_desktop.core.diffusion.harmonize import harmonize
from megaportrait_desktop.core.diffusion.pair import ImageSettings, generate_pair
from megaportrait_desktop.core.diffusion.shading import shade
from megaportrait_desktop.core.errors import Cancelled
from megaportrait_desktop.core.progress import CancelToken, Reporter
from megaportrait_desktop.core.request import DiffusionParams, ShadingParams

from .conftest import CROP

A, B = ImageSettings(lora_scale=0.3, denoise=0.5, control=1.0), ImageSettings(lora_scale=1.0, denoise=0.75, control=0.8)


def _stages(models, crop, params, seed=3):
    """Every kind of stage call: pair (two calls), batched pair, Shading (two ControlNets), Harmonization
    (inpaint + tile), each at 8 scheduled steps; returns the images and the progress reports, each marked
    whether it is the fast path's notice that it is preparing (recording or compiling) a step."""
    reports = []
    reporter = Reporter(reports.append)
    control = (crop * 255).astype(np.uint8)
    a, b = generate_pair(models, crop, control, A, B, params, 8, seed, reporter)
    same = ImageSettings(0.5, 0.5, 1.0)
    a2, b2 = generate_pair(models, crop, control, same, same, params, 8, seed, reporter)
    _, _, shaded = shade(models, a, b, ShadingParams(), params, 8, seed, reporter)
    weight = np.zeros((CROP, CROP), np.float32)
    weight[16:48, 16:48] = 0.7
    harmonized = harmonize(models, shaded, weight, params, 8, seed, reporter)
    images = {"A": a, "B": b, "batched A": a2, "batched B": b2, "shaded": shaded, "harmonized": harmonized}
    notices = (PREPARING, PREPARING_COMPILED)
    return images, [(p.stage, p.step, p.total, None if p.preview is None else p.preview.shape, p.message in notices)
                    for p in reports]


@pytest.fixture
def models(engine):
    models = engine.models()
    models.set_lora(None)
    yield models
    if models.fast is not None:
        models.fast.release_lora()
    models.fast = None
    models.set_lora(None)


def _fast(models, **options) -> FastRuntime:
    return FastRuntime(models.components, models.controlnets, models.choice.device, FastOptions(**options))


@pytest.mark.parametrize("guidance", [2.0, 1.0])
def test_fast_loop_gives_the_stock_pipelines_images_bit_for_bit(models, reference_crop, guidance) -> None:
    params = DiffusionParams(guidance_scale=guidance, preview_every=2)
    stock, stock_reports = _stages(models, reference_crop, params)
    models.fast = _fast(models)
    fast, fast_reports = _stages(models, reference_crop, params)
    for name in stock:
        assert np.array_equal(stock[name], fast[name]), name
    assert fast_reports == stock_reports  # every step reported, previews on the same steps
    assert np.abs(stock["A"] - stock["B"]).mean() > 1e-3  # the stages did produce different images
    # One step per signature: the pair (one image a call), the batched pair, Shading, Harmonization.
    assert len(models.fast.graphs) == 4


def test_folded_lora_gives_the_adapters_images_and_leaves_the_exact_base_weights(models, trained_lora,
                                                                                 reference_crop) -> None:
    unet = models.components["unet"]
    before = {k: v.clone() for k, v in unet.state_dict().items() if "lora" not in k}
    models.set_lora(str(trained_lora.lora_path))
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    stock, _ = _stages(models, reference_crop, params)
    models.fast = _fast(models)
    fast, _ = _stages(models, reference_crop, params)
    folded = models.fast.fused
    assert folded is not None and len(folded) > 0 and folded.scale == {"identity": 0.0}  # Harmonization ran last, at 0
    for name in stock:
        # float32 rounding of W + s·BA against W·x + s·B(A·x): far below one 8-bit level (0.0039)
        assert np.abs(stock[name] - fast[name]).max() < 1e-4, name
    assert np.abs(fast["A"] - fast["B"]).mean() > 1e-3
    # Back to the stock path: the adapters are live again and the base weights are bit-identical.
    models.fast.release_lora()
    models.fast = None
    again, _ = _stages(models, reference_crop, params)
    assert all(np.array_equal(again[name], stock[name]) for name in stock)
    # (the stock path has its adapters loaded again: the weights sit under "base_layer")
    after = {k.replace("base_layer.", ""): v for k, v in unet.state_dict().items() if "lora" not in k}
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_folding_writes_the_lora_files_delta_at_each_scale_and_unloads_the_adapters(models, trained_lora,
                                                                                    reference_crop) -> None:
    """One adapted weight, against ``W₀ + s · up·down · alpha/rank`` read straight from the LoRA file."""
    from peft.tuners.lora import LoraLayer
    from safetensors import safe_open

    unet = models.components["unet"]
    models.fast = _fast(models)
    models.set_lora(str(trained_lora.lora_path))
    with safe_open(str(trained_lora.lora_path), "pt") as f:
        down_key = next(k for k in f.keys() if k.endswith("attn1.to_q.lora.down.weight"))  # noqa: SIM118
        down, up = f.get_tensor(down_key), f.get_tensor(down_key.replace("lora.down", "lora.up"))
        alpha = float(f.metadata()["megaportrait.lora_alpha"])
    name = down_key.removeprefix("unet.").removesuffix(".lora.down.weight")
    module = unet.get_submodule(name)
    base = module.weight.detach().clone()
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    for scale in (0.3, 1.0, 0.0):
        settings = ImageSettings(lora_scale=scale, denoise=0.5, control=1.0)
        generate_pair(models, reference_crop, np.zeros_like(reference_crop, np.uint8), settings, settings, params, 2,
                      1, Reporter())
        expected = base + scale * (up @ down) * alpha / down.shape[0]
        torch.testing.assert_close(module.weight, expected, rtol=1e-5, atol=1e-6)
    # The adapters were unloaded: the modules the fast path runs are the plain ones.
    assert not any(isinstance(m, LoraLayer) for m in unet.modules())
    assert type(unet.get_submodule(name)) is torch.nn.Linear


def test_cancel_on_the_fast_path_stops_within_one_step(models, reference_crop) -> None:
    models.fast = _fast(models)
    token = CancelToken()
    seen = []

    def on_progress(p) -> None:
        seen.append((p.stage, p.step))
        if p.step == 2:
            token.cancel()

    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    with pytest.raises(Cancelled):
        generate_pair(models, reference_crop, np.zeros_like(reference_crop, np.uint8), A, B, params, 8, 1,
                      Reporter(on_progress, token))
    assert seen[-1] == ("identity", 2)


def test_low_memory_mode_runs_two_controlnet_slots_and_gives_the_same_images(models, reference_crop) -> None:
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    stock, _ = _stages(models, reference_crop, params)
    try:
        models.fast = _fast(models, low_memory=True)
        slots = models.fast.slots
        assert set(slots.modules) == {"slot0", "slot1"}
        fast, _ = _stages(models, reference_crop, params)
        for name in stock:
            # the same kernels on copies of the same weights (memory alignment may differ: last-bit rounding)
            assert np.abs(stock[name] - fast[name]).max() < 1e-5, name
        # Harmonization ran last: inpaint in slot 0, tile (the light ControlNet) in slot 1.
        assert slots._holds == {"slot0": "inpaint_controlnet", "slot1": "light_controlnet"}
        one = sum(t.numel() * t.element_size() for t in models.controlnets["face_controlnet"].state_dict().values())
        # pair: face; Shading: light, detail; Harmonization: inpaint, light (each copied once, as needed)
        assert slots.bytes_copied == 5 * one
    finally:
        for net in models.controlnets.values():
            net.to(models.choice.device)


def test_fast_path_is_the_default_on_cuda_and_a_setting_turns_it_off(monkeypatch) -> None:
    """The decision, with the GPU query answered as an H100, a 12 GB and a 6 GB card would."""
    from megaportrait_desktop.core.diffusion import devices
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.model_settings import ModelSettings

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    memory = {"gb": 80.0}
    monkeypatch.setattr(devices, "gpu_memory_gb", lambda device: memory["gb"])
    default = devices.choose_device()
    assert default.device.type == "cuda" and default.fast == FastOptions(compile=devices.COMPILE_BY_DEFAULT)
    assert DiffusionEngine(ModelSettings()).device().fast == default.fast  # the app's and CLI's engine
    assert DiffusionEngine(ModelSettings(fast_path="off")).device().fast is None
    assert devices.choose_device(compile="on").fast.compile
    assert devices.choose_device("cpu").fast is None  # the fast path is CUDA's
    memory["gb"] = 12.0
    assert devices.choose_device().fast.low_memory
    assert not devices.choose_device(low_memory="off").fast.low_memory
    memory["gb"] = 6.0  # small cards offload the models to the CPU, which graphs cannot follow
    small = devices.choose_device()
    assert small.offload and small.fast is None
    from megaportrait_desktop.core.errors import RequestError

    with pytest.raises(RequestError, match="fast path setting 'fastest'"):
        devices.choose_device(fast_path="fastest")


def test_speed_settings_are_saved_with_the_model_settings(tmp_path) -> None:
    from megaportrait_desktop.core.model_settings import ModelSettings, load_settings, save_settings

    settings = ModelSettings(fast_path="off", low_memory="on", compile="on")
    save_settings(settings, tmp_path / "models.json")
    again = load_settings(tmp_path / "models.json")
    assert (again.fast_path, again.low_memory, again.compile) == ("off", "on", "on")
    (tmp_path / "old.json").write_text('{"models": {}, "device": "auto"}')  # written before the fast path
    assert load_settings(tmp_path / "old.json").fast_path == "auto"


def test_training_leaves_plain_modules_behind(engine, photo_files, tmp_path) -> None:
    """No peft layer survives a training: the compiled fast path would have to trace the UNet again."""
    from peft.tuners.lora import LoraLayer

    from megaportrait_desktop.core.diffusion.training import TrainingParams

    models = engine.models()
    models.set_lora(None)
    params = TrainingParams(steps=1, resolution=CROP, rank=2, train_text_encoder=True)
    engine.train_identity([photo_files["grace"]], tmp_path, params)
    for name in ("unet", "text_encoder"):
        assert not any(isinstance(m, LoraLayer) for m in models.components[name].modules()), name


def test_the_fast_path_runs_the_models_in_one_inference_state(models) -> None:
    """Eval mode and no gradients, whatever ran before (a training leaves eval mode, a fresh model may not):
    both change what torch.compile traces or its cache key, so a state left by a training would make the
    next start compile again."""
    unet = models.components["unet"]
    unet.train()
    unet.requires_grad_(True)
    models.fast = _fast(models)
    for module in (unet, models.components["vae"], models.components["text_encoder"], *models.controlnets.values()):
        assert not module.training
        assert not any(p.requires_grad for p in module.parameters())


def test_an_unusable_compile_cache_leaves_the_compiled_path_ready(models, tmp_path) -> None:
    """A file where the cache folder should be (as unusable as a full or read-only disk): the runtime is built
    and compiles from scratch, the reason is in its report, and the file is left as it was."""
    blocked = tmp_path / "cache"
    blocked.write_text("not a folder")
    try:
        runtime = FastRuntime(models.components, models.controlnets, models.choice.device, FastOptions(compile=True),
                              blocked)
        report = runtime.compile_report
        assert report["artefact_files_loaded"] == 0
        assert "cache" in report["cache_error"] and report["folder"].startswith(str(blocked))
        assert callable(runtime._unet) and set(runtime._vae_parts) == {"encoder", "decoder"}
    finally:
        for module in (models.components["unet"], models.components["vae"], *models.controlnets.values()):
            module.to(memory_format=torch.contiguous_format)  # compiling made them channels-last
    assert blocked.read_text() == "not a folder"


def test_images_sent_as_8_bit_pixels_become_the_processors_own_tensors(models, reference_crop) -> None:
    """The fast path sends a crop's 8-bit pixels to the device and looks up their float values there: the same
    tensor (values and layout) as the pipeline's image and control-image processors make on the CPU."""
    from megaportrait_desktop.core.diffusion.runtime import to_pil
    from megaportrait_desktop.core.diffusion.sampler import uploaded

    image, other = to_pil(reference_crop), to_pil(reference_crop[::-1].copy())
    img2img, inpaint = models.pipe("img2img", "face_controlnet"), models.pipe("inpaint", "inpaint_controlnet")
    cpu = torch.device("cpu")
    for processor in (img2img.image_processor, img2img.control_image_processor, inpaint.image_processor):
        for images in (image, [image, other]):
            expected = processor.preprocess(images, height=CROP, width=CROP)
            got = uploaded(processor, images, CROP, CROP, cpu)
            assert got is not None and got.dtype == expected.dtype
            assert torch.equal(got, expected) and got.stride() == expected.stride()
    assert float(uploaded(img2img.image_processor, image, CROP, CROP, cpu).min()) < 0  # normalised to [-1, 1]
    # Anything else goes through the processor: another size, a grey image, a processor that binarises.
    assert uploaded(img2img.image_processor, image, 2 * CROP, 2 * CROP, cpu) is None
    assert uploaded(img2img.image_processor, image.convert("L"), CROP, CROP, cpu) is None
    assert uploaded(inpaint.mask_processor, image, CROP, CROP, cpu) is None


def test_a_chain_encodes_its_prompts_once_per_session(models, reference_crop) -> None:
    """The pair's and the later stages' prompts (a list and a string) are both kept: a second chain runs the
    text encoder not at all."""
    runs = []
    hook = models.components["text_encoder"].register_forward_hook(lambda *_: runs.append(1))
    try:
        models.fast = _fast(models)
        params = DiffusionParams(guidance_scale=2.0, preview_every=0)
        _stages(models, reference_crop, params)
        first = len(runs)
        _stages(models, reference_crop, params)
    finally:
        hook.remove()
    assert first >= 2  # the pair's prompt list and the Shading's prompt
    assert len(runs) == first
