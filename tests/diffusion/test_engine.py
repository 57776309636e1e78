"""The diffusion engine end to end on tiny models: pair, Shading, Harmonization, progress, cancel, seeds, CLI."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.core.diffusion.pair import ImageSettings, generate_pair, pair_settings
from megaportrait_desktop.core.errors import Cancelled
from megaportrait_desktop.core.pipeline import STAGES, run
from megaportrait_desktop.core.progress import CancelToken, Reporter
from megaportrait_desktop.core.request import DiffusionParams, IdentityParams, RunRequest

from .conftest import CROP


def _request(photo_files, lora=None, **diffusion) -> RunRequest:
    params = DiffusionParams(lora=None if lora is None else str(lora), guidance_scale=2.0, **diffusion)
    return RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                      engine="diffusion", crop_size=CROP, steps=4, seed=7, diffusion=params)


@pytest.fixture(scope="module")
def result(engine, trained_lora, photo_files):
    progress = []
    out = run(_request(photo_files, trained_lora.lora_path, preview_every=2), on_progress=progress.append,
              diffusion=engine)
    return out, progress


def test_every_stage_image_is_returned(result, photo_files) -> None:
    out, _ = result
    assert set(out.stages) == set(STAGES)
    for name in ("reference", "A", "B", "light_map", "hf_map", "shaded"):
        assert out.stages[name].shape == (CROP, CROP, 3) and out.stages[name].dtype == np.uint8, name
    reference = np.asarray(Image.open(photo_files["reference"]).convert("RGB"))
    assert out.stages["final"].shape == reference.shape and out.final.pixels.dtype == reference.dtype
    assert set(out.timings) >= {"load", "identity", "shading", "paste", "harmonize"}
    assert not [w for w in out.warnings if "LoRA" in w]  # a LoRA was given
    # Scored like a classic run, by the one orchestrator: the identity report names the source photo used.
    assert out.identity_report is not None and out.identity_report.verdict
    # Provenance: every model the run used, with a hash of its weights.
    assert set(out.models) == {"base", "face_controlnet", "light_controlnet", "detail_controlnet",
                               "inpaint_controlnet", "lora"}
    assert all(len(m["sha256"]) == 64 for m in out.models.values())
    assert out.models["face_controlnet"]["sha256"] != out.models["light_controlnet"]["sha256"]


def test_shading_and_harmonization_leave_everything_outside_their_masks_bit_identical(result, photo_files) -> None:
    out, _ = result
    reference = np.asarray(Image.open(photo_files["reference"]).convert("RGB"))
    pasted, final = out.stages["pasted"], out.final.pixels
    changed_by_paste = np.any(pasted != reference, axis=2)
    changed_by_harmonize = np.any(final != pasted, axis=2)
    assert changed_by_paste.any() and changed_by_harmonize.any()  # both stages did something
    assert np.array_equal(final[~out.region], reference[~out.region])
    # Pasting changes only the face mask; harmonising only the region (mask + seam band).
    assert not (changed_by_paste & ~out.region).any()
    assert out.region.sum() < 0.25 * out.region.size
    # The seam band reaches past the face mask: harmonisation touched pixels the paste did not.
    assert (changed_by_harmonize & ~changed_by_paste).any()


def test_progress_per_stage_and_step_with_cheap_previews(result) -> None:
    _, progress = result
    stages = [p.stage for p in progress]
    for stage in ("load", "identity", "shading", "paste", "harmonize"):
        assert stage in stages
    shading = [p for p in progress if p.stage == "shading"]
    assert shading[0].step == 0  # the stage opens before its first step
    steps = shading[1:]
    assert [p.step for p in steps] == list(range(1, steps[-1].total + 1))
    previews = [p for p in progress if p.preview is not None]
    assert previews and all(p.step % 2 == 0 for p in previews)
    # A latent preview: 1/8 of the crop, no VAE decode.
    assert previews[0].preview.shape == (CROP // 8, CROP // 8, 3) and previews[0].preview.dtype == np.uint8


def test_a_is_closer_to_the_reference_than_b(engine, trained_lora, reference_crop) -> None:
    models = engine.models()
    models.set_lora(str(trained_lora.lora_path))
    from megaportrait_desktop.core.diffusion.control import face_geometry
    from megaportrait_desktop.core.imaging import to_uint8

    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    a_set, b_set = pair_settings(IdentityParams(a_strength=0.0, b_strength=1.0), params)
    assert a_set.lora_scale < b_set.lora_scale and a_set.denoise < b_set.denoise
    control = face_geometry("mediapipe_face", to_uint8(reference_crop))
    assert control.shape == reference_crop.shape and control.any()  # the face mesh was drawn
    a, b = generate_pair(models, reference_crop, control, a_set, b_set, params, steps=4, seed=1,
                         reporter=Reporter())
    dist_a = np.abs(a - reference_crop).mean()
    dist_b = np.abs(b - reference_crop).mean()
    assert np.abs(a - b).mean() > 0.01
    assert dist_a < dist_b


def test_pair_with_equal_settings_is_one_batched_pass(engine, reference_crop) -> None:
    models = engine.models()
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    same = ImageSettings(lora_scale=0.5, denoise=0.5, control=1.0)
    progress = []
    a, b = generate_pair(models, reference_crop, np.zeros_like(reference_crop), same, same, params, steps=4, seed=1,
                         reporter=Reporter(progress.append))
    assert {p.message for p in progress} == {"Generating A and B"}
    assert len(progress) == 2  # int(4 × 0.5) denoising steps, once for both images
    assert np.abs(a - b).mean() > 1e-3  # two seeds


def test_same_seed_gives_the_same_image(engine, reference_crop) -> None:
    models = engine.models()
    params = DiffusionParams(guidance_scale=2.0, preview_every=0)
    a_set, b_set = ImageSettings(0.0, 0.5, 1.0), ImageSettings(0.0, 0.75, 0.8)
    control = np.zeros_like(reference_crop)

    def pair(seed):
        return generate_pair(models, reference_crop, control, a_set, b_set, params, 4, seed, Reporter())

    first, again, other = pair(11), pair(11), pair(12)
    assert np.array_equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_same_seed_gives_the_same_run(engine, photo_files) -> None:
    request = _request(photo_files, preview_every=0)
    first = run(request, diffusion=engine)
    second = run(request, diffusion=engine)
    assert np.array_equal(first.final.pixels, second.final.pixels)
    assert any("No identity LoRA" in w for w in first.warnings)


def test_cancel_stops_within_one_step_and_returns_nothing(engine, photo_files) -> None:
    token = CancelToken()
    seen = []

    def on_progress(progress) -> None:
        seen.append((progress.stage, progress.step))
        if progress.stage == "shading" and progress.step == 1:
            token.cancel()

    with pytest.raises(Cancelled):
        run(_request(photo_files, preview_every=0), on_progress=on_progress, cancel=token, diffusion=engine)
    # The report of the step after the cancel raised: no second shading step, no later stage.
    assert seen[-1] == ("shading", 1)


def test_single_file_models_give_the_same_run_as_folders(engine, single_file_engine, photo_files) -> None:
    request = _request(photo_files, preview_every=0)
    a = run(request, diffusion=engine)
    b = run(request, diffusion=single_file_engine)
    assert np.abs(a.final.pixels.astype(int) - b.final.pixels.astype(int)).max() <= 1


def test_cli_trains_an_identity_and_runs_the_diffusion_engine(tiny_models, photo_files, tmp_path, capsys) -> None:
    from megaportrait_desktop.cli import main
    from megaportrait_desktop.core.model_settings import load_settings

    folders = tiny_models["folders"]
    code = main(["train-identity", "--identity", str(photo_files["identity"]), "--out", str(tmp_path / "lora"),
                 "--steps", "2", "--resolution", str(CROP), "--rank", "2", "--base", str(folders["base"]),
                 "--device", "cpu", "--save-models"])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "lora" / "identity_lora.safetensors").exists()
    assert load_settings().models["base"].source == str(folders["base"])  # --save-models remembered it
    flags = [f"--{role.replace('_', '-')}={folders[role]}" for role in folders if role != "base"]
    code = main(["run", "--engine", "diffusion", "--identity", str(photo_files["identity"]),
                 "--reference", str(photo_files["reference"]), "--out", str(tmp_path / "out.png"),
                 "--crop-size", str(CROP), "--steps", "2", "--face-control", "canny",
                 "--lora", str(tmp_path / "lora" / "identity_lora.safetensors"), *flags])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (tmp_path / "out.png").exists() and (tmp_path / "out_stages" / "B.png").exists()
    import json

    provenance = json.loads(Image.open(tmp_path / "out.png").text["megaportrait:models"])
    assert provenance["base"]["path"] == str(folders["base"]) and len(provenance["lora"]["sha256"]) == 64
    code = main(["run", "--engine", "diffusion", "--identity", str(photo_files["identity"]),
                 "--reference", str(photo_files["reference"]), "--out", str(tmp_path / "x.png"),
                 "--base", str(tmp_path / "model.ckpt")])
    assert code == 2 and "pickle checkpoint" in capsys.readouterr().err


def test_cli_points_at_single_files_with_their_configs(tiny_models) -> None:
    from megaportrait_desktop.cli import build_parser
    from megaportrait_desktop.cli_diffusion import engine_from_args
    from megaportrait_desktop.core.diffusion.models import resolve_all
    from megaportrait_desktop.core.errors import RequestError
    from megaportrait_desktop.core.model_settings import ROLES

    single, folders = tiny_models["single"], tiny_models["folders"]
    argv = ["run", "--identity", "x", "--reference", "y", "--out", "z", "--engine", "diffusion"]
    for role in ROLES:
        argv += [f"--{role.replace('_', '-')}", str(single[role]), "--model-config", f"{role}={folders[role]}"]
    settings = engine_from_args(build_parser().parse_args(argv)).settings
    resolved = resolve_all(settings)
    assert all(m.kind == "single_file" and m.config == folders[r] for r, m in resolved.items())
    with pytest.raises(RequestError, match="ROLE=PATH_OR_REPO"):
        engine_from_args(build_parser().parse_args([*argv[:9], "--model-config", "nonsense"]))


def test_diffusion_settings_round_trip_and_old_requests_still_load(photo_files) -> None:
    request = _request(photo_files, lora="/x/identity_lora.safetensors", a_denoise=0.2, face_control="canny")
    assert RunRequest.from_json(request.to_json()) == request
    old = request.to_dict()
    del old["diffusion"]  # a request stored before the diffusion engine existed
    assert RunRequest.from_dict(old).diffusion == DiffusionParams()
    from megaportrait_desktop.core.errors import RequestError

    with pytest.raises(RequestError, match="shading_denoise must be between 0 and 1"):
        _request(photo_files, shading_denoise=1.5)


def test_weight_based_annotator_without_weights_says_what_to_install(reference_crop, tmp_path) -> None:
    from megaportrait_desktop.core.diffusion.control import face_geometry
    from megaportrait_desktop.core.errors import ModelMissingError
    from megaportrait_desktop.core.imaging import to_uint8

    with pytest.raises(ModelMissingError, match="lineart annotator needs sk_model.pth .* 'lllyasviel/Annotators'"):
        face_geometry("lineart", to_uint8(reference_crop), tmp_path)
    for kind in ("canny", "lineart_standard"):
        out = face_geometry(kind, to_uint8(reference_crop))
        assert out.shape == reference_crop.shape and out.dtype == np.uint8 and out.any()


def test_user_mask_limits_the_change(engine, photo_files, tmp_path) -> None:
    import cv2

    reference = np.asarray(Image.open(photo_files["reference"]).convert("RGB"))
    mask = np.zeros(reference.shape[:2], np.uint8)
    cv2.ellipse(mask, (240, 120), (40, 55), 0, 0, 360, 255, -1)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    request = _request(photo_files, preview_every=0).replace(mask=str(tmp_path / "mask.png"))
    out = run(request, diffusion=engine)
    assert np.array_equal(out.final.pixels[~out.region], reference[~out.region])
    changed = np.any(out.final.pixels != reference, axis=2)
    ys, xs = np.nonzero(changed)
    assert changed.any() and 150 < xs.mean() < 330 and 40 < ys.mean() < 200  # around the painted face


def test_a_diffusion_run_can_stop_after_a_stage(engine, photo_files) -> None:
    request = _request(photo_files, preview_every=0)
    full = run(request, diffusion=engine)
    pair = run(request, diffusion=engine, until="identity")
    assert pair.final is None and set(pair.stages) == {"reference", "A", "B"}
    np.testing.assert_array_equal(pair.stages["B"], full.stages["B"])  # same seed: the same pair
    shaded = run(request, diffusion=engine, until="shading")
    assert shaded.final is None and "pasted" in shaded.stages and "final" not in shaded.stages
    np.testing.assert_array_equal(shaded.stages["pasted"], full.stages["pasted"])
