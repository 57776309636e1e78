from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from megaportrait_desktop.core import landmarks as L
from megaportrait_desktop.core.errors import Cancelled, FaceError, ImageError, RequestError
from megaportrait_desktop.core.face import detect_faces
from megaportrait_desktop.core.imaging import load_image
from megaportrait_desktop.core.pipeline import STAGES, run, save_result
from megaportrait_desktop.core.progress import CancelToken
from megaportrait_desktop.core.request import HarmonizeParams, RunRequest, ShadingParams


@pytest.fixture(scope="module")
def demo_request(photo_files) -> RunRequest:
    identity = tuple(str(p) for p in sorted(photo_files["identity"].iterdir()))
    return RunRequest(identity=identity, reference=str(photo_files["reference"]))


@pytest.fixture(scope="module")
def demo_result(demo_request):
    return run(demo_request)


def test_output_has_the_reference_size_and_every_stage(demo_result, astronaut) -> None:
    final = demo_result.final.pixels
    assert final.shape == astronaut.shape and final.dtype == np.uint8
    assert set(demo_result.stages) == set(STAGES)
    for name in ("reference", "A", "B", "light_map", "hf_map", "shaded"):
        assert demo_result.stages[name].shape == (512, 512, 3)
    assert demo_result.stages["mask"].shape == (512, 512)


def test_unchanged_outside_the_region_changed_inside(demo_result, astronaut) -> None:
    final = demo_result.final.pixels
    region = demo_result.region
    assert 0.01 < region.mean() < 0.3  # the face and its seam, not the whole picture
    assert np.array_equal(final[~region], astronaut[~region])  # bit-identical
    inside = np.abs(final[region].astype(int) - astronaut[region]).mean()
    assert inside > 10  # a different face is there


def test_face_geometry_moves_toward_the_identity(demo_result, astronaut_face, grace_face) -> None:
    out_faces = detect_faces(demo_result.final.pixels)
    assert len(out_faces) == 1
    before = L.geometry_distance(astronaut_face.landmarks, grace_face.landmarks)
    after = L.geometry_distance(out_faces[0].landmarks, grace_face.landmarks)
    assert after < 0.6 * before, (before, after)


def test_a_is_the_reference_and_b_the_source_with_default_strengths(demo_result) -> None:
    stages = demo_result.stages
    # A is the reference crop with its face outline moved onto the client's: the same wherever the paste
    # mask does not reach.
    untouched = stages["mask"] == 0
    assert untouched.mean() > 0.3
    assert np.abs(stages["A"].astype(int) - stages["reference"])[untouched].max() <= 1
    assert np.abs(stages["B"].astype(int) - stages["reference"]).mean() > 20


def test_sliders_change_the_result(demo_request, demo_result) -> None:
    softer = run(demo_request.replace(shading=ShadingParams(light_cutoff=10.0, hf_cutoff=10.0)))
    assert np.abs(softer.stages["shaded"].astype(int) - demo_result.stages["shaded"]).mean() > 1
    no_harmony = run(demo_request.replace(harmonize=HarmonizeParams(strength=0.0)))
    assert not np.array_equal(no_harmony.final.pixels, demo_result.final.pixels)


def test_progress_stages_and_cancel(demo_request) -> None:
    seen = []
    run(demo_request, on_progress=lambda p: seen.append(p.stage))
    assert [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s] == \
        ["load", "identity", "shading", "paste", "harmonize", "score"]  # scoring is a step the user waits for

    token = CancelToken()

    def cancel_at_shading(progress) -> None:
        if progress.stage == "shading":
            token.cancel()

    reached = []
    with pytest.raises(Cancelled):
        run(demo_request, on_progress=lambda p: (reached.append(p.stage), cancel_at_shading(p)), cancel=token)
    assert "paste" not in reached  # stopped at the next step


def test_16bit_reference_stays_16bit_and_untouched_outside(tmp_path, demo_request, astronaut) -> None:
    import cv2

    deep = astronaut.astype(np.uint16) * 257 + 7
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    result = run(demo_request.replace(reference=str(path)))
    assert result.final.pixels.dtype == np.uint16
    assert np.array_equal(result.final.pixels[~result.region], deep[~result.region])


def test_user_mask_limits_the_change(tmp_path, demo_request, astronaut, astronaut_face) -> None:
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    x0, y0, x1, y1 = (int(v) for v in astronaut_face.box)
    mask[y0 + 30:y1 - 20, x0 + 20:x1 - 20] = 255  # a rectangle inside the face
    Image.fromarray(mask).save(tmp_path / "mask.png")
    result = run(demo_request.replace(mask=str(tmp_path / "mask.png")))
    changed = np.any(result.final.pixels != astronaut, axis=2)
    assert changed.any()
    ys, xs = np.nonzero(changed)
    seam = 10 / 3 + 6  # seam width in full pixels (crop scale ≈ 3) plus the Poisson pad
    assert ys.min() >= y0 + 30 - seam and ys.max() <= y1 - 20 + seam
    assert xs.min() >= x0 + 20 - seam and xs.max() <= x1 - 20 + seam

    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ImageError, match="reset the mask"):
        run(demo_request.replace(mask=str(tmp_path / "small.png")))
    Image.fromarray(np.zeros(astronaut.shape[:2], np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(FaceError, match="mask is empty"):
        run(demo_request.replace(mask=str(tmp_path / "empty.png")))


def test_bad_inputs_give_typed_errors(tmp_path, demo_request) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    with pytest.raises(FaceError, match="no face found in the reference"):
        run(demo_request.replace(reference=str(tmp_path / "noise.png")))
    with pytest.raises(FaceError, match="None of the identity photos"):
        run(demo_request.replace(identity=(str(tmp_path / "noise.png"),)))
    with pytest.raises(FaceError, match="Face 3 was asked for"):
        run(demo_request.replace(face_index=2))


def test_result_saves_final_with_request_and_stages(tmp_path, demo_result) -> None:
    path = save_result(demo_result, tmp_path / "out")
    assert path == tmp_path / "out" / "final.png"
    again = load_image(path)
    np.testing.assert_array_equal(again.pixels, demo_result.final.pixels)
    stored = Image.open(path).text["megaportrait:request"]
    assert RunRequest.from_json(stored) == demo_result.request
    for name in STAGES:
        assert (tmp_path / "out" / "final_stages" / f"{name}.png").is_file()


def test_request_round_trips_and_refuses_bad_json(demo_request) -> None:
    custom = demo_request.replace(seed=7, face_index=0, shading=ShadingParams(light_cutoff=3.5, detail_weight=0.8))
    assert RunRequest.from_json(custom.to_json()) == custom
    data = json.loads(custom.to_json())
    del data["harmonize"]  # written by an older version: defaults fill in
    assert RunRequest.from_dict(data).harmonize == HarmonizeParams()
    with pytest.raises(RequestError, match="newer version"):
        RunRequest.from_dict({**json.loads(custom.to_json()), "version": 99})
    with pytest.raises(RequestError, match="Unknown run setting"):
        RunRequest.from_dict({**json.loads(custom.to_json()), "sharpen": 1})
    with pytest.raises(RequestError, match="not valid JSON"):
        RunRequest.from_json("{nope")
    with pytest.raises(RequestError, match="between 0 and 1"):
        custom.replace(harmonize=HarmonizeParams(strength=2.0))
    with pytest.raises(RequestError, match="Unknown engine"):
        custom.replace(engine="magic")
    with pytest.raises(RequestError, match="identity set is empty"):
        RunRequest(identity=(), reference="x.jpg")


def test_runs_can_stop_after_a_stage(demo_request, demo_result) -> None:
    pair = run(demo_request, until="identity")
    assert pair.final is None and set(pair.stages) == {"reference", "A", "B"}
    np.testing.assert_array_equal(pair.stages["B"], demo_result.stages["B"])
    shaded = run(demo_request, until="shading")
    assert shaded.final is None and "pasted" in shaded.stages and "final" not in shaded.stages
    np.testing.assert_array_equal(shaded.stages["pasted"], demo_result.stages["pasted"])
    with pytest.raises(RequestError, match="Unknown stage"):
        run(demo_request, until="varnish")


def test_without_pytorch_the_diffusion_engine_says_so(demo_request, monkeypatch) -> None:
    import sys

    # As in the lean installer: importing the diffusion engine fails for want of torch.
    monkeypatch.setitem(sys.modules, "megaportrait_desktop.core.diffusion.engine", None)
    with pytest.raises(RequestError, match="no diffusion engine"):
        run(demo_request.replace(engine="diffusion"))
