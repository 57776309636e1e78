"""Camera-sized references (issue 15): the speed-ups give the same pixels, projects keep crops, work can stop."""

from __future__ import annotations

import sqlite3
import threading
import time

import cv2
import numpy as np
import pytest

from megaportrait_desktop.core import classic
from megaportrait_desktop.core.align import crop_face, warp_into_crop
from megaportrait_desktop.core.classic_engine import ClassicEngine
from megaportrait_desktop.core.engine import Scene
from megaportrait_desktop.core.errors import Cancelled
from megaportrait_desktop.core.face import detect_faces
from megaportrait_desktop.core.imaging import from_float, load_image, to_float
from megaportrait_desktop.core.pipeline import load_scene, paste, paste_mask, run
from megaportrait_desktop.core.progress import CancelToken, Reporter, run_cancellable
from megaportrait_desktop.core.request import HarmonizeParams, RunRequest
from megaportrait_desktop.project import Project, list_outputs
from megaportrait_desktop.project.database import MIGRATIONS, SCHEMA_VERSION, _statements
from megaportrait_desktop.project.exchange import export_output
from megaportrait_desktop.project.history import stage_pixels

from .camera_files import camera_reference


@pytest.fixture(scope="module")
def big_reference(tmp_path_factory):
    return camera_reference(tmp_path_factory.mktemp("camera") / "portrait_24mp.jpg")


@pytest.fixture(scope="module")
def big_run(big_reference, photo_files):
    identity = tuple(str(p) for p in sorted(photo_files["identity"].iterdir()))
    return run(RunRequest(identity=identity, reference=str(big_reference)))


@pytest.mark.slow
def test_the_face_crop_converts_only_its_window_and_is_the_whole_images_crop(astronaut, big_reference) -> None:
    big = load_image(big_reference).pixels
    cases = {"portrait": astronaut, "face at the top-left edge": np.ascontiguousarray(astronaut[60:, 120:]),
             "tight crop (mirrored on every side)": np.ascontiguousarray(astronaut[40:260, 110:300]),
             "16-bit": astronaut.astype(np.uint16) * 257, "24 MP": big}
    for name, image in cases.items():
        face = detect_faces(image if image.dtype == np.uint8 else (image // 257).astype(np.uint8))[0]
        converted: list[int] = []

        def convert(pixels: np.ndarray, converted: list[int] = converted) -> np.ndarray:
            converted.append(pixels.shape[0] * pixels.shape[1])
            return to_float(pixels)
        for size in (256, 512):
            whole = crop_face(to_float(image), face.landmarks, size)
            windowed = crop_face(image, face.landmarks, size, convert=convert)
            np.testing.assert_array_equal(windowed.image, whole.image, err_msg=name)
            np.testing.assert_array_equal(windowed.matrix, whole.matrix)
        if name == "24 MP":
            assert max(converted) < 0.2 * big.shape[0] * big.shape[1]  # the face, not 288 MB of float32


def test_a_user_mask_is_warped_from_its_window_as_from_the_whole_mask(astronaut, astronaut_face) -> None:
    crop = crop_face(to_float(astronaut), astronaut_face.landmarks, 512)
    mask = np.zeros(astronaut.shape[:2], np.uint8)
    cv2.ellipse(mask, (250, 20), (90, 140), 0, 0, 360, 255, -1)  # reaches past the top edge
    whole = cv2.warpAffine(to_float(mask), crop.matrix, (512, 512), flags=cv2.INTER_LINEAR)
    windowed = warp_into_crop(mask, crop.matrix, 512, cv2.INTER_LINEAR, cv2.BORDER_CONSTANT, to_float)
    np.testing.assert_array_equal(windowed, whole)


@pytest.mark.parametrize("seam_width", [10.0, 0.0, 30.0])
def test_harmonising_the_masks_box_gives_the_pixels_of_the_whole_roi(photo_files, seam_width) -> None:
    identity = tuple(str(p) for p in sorted(photo_files["identity"].iterdir()))
    request = RunRequest(identity=identity, reference=str(photo_files["reference"]),
                         harmonize=HarmonizeParams(seam_width=seam_width))
    reporter = Reporter()
    scene, _ = load_scene(request, reporter)
    engine = ClassicEngine()
    pair = engine.identity_pair(scene, reporter)
    shading = engine.shading(scene, pair, reporter)
    seam_px = seam_width / scene.crop.scale
    mask, mask_crop, roi = paste_mask(request, scene.picture.pixels.shape[:2], scene.crop, seam_px,
                                      lambda: engine.auto_mask(scene, pair))
    pasted = paste(scene, shading.shaded, mask, mask_crop, roi)
    harmonized = engine.harmonize(scene, pasted, seam_px, reporter)
    # The same step over the whole ROI, as it ran before the box.
    x0, y0, x1, y1 = roi
    out, region = classic.harmonize(pasted.roi_float, to_float(scene.picture.pixels[y0:y1, x0:x1]), mask,
                                    request.harmonize, seam_px)
    np.testing.assert_array_equal(harmonized.region, region)
    np.testing.assert_array_equal(harmonized.window[region], from_float(out, np.uint8)[region])


@pytest.mark.slow
def test_a_24_megapixel_run_keeps_the_reference_outside_its_box(big_run, big_reference) -> None:
    reference = load_image(big_reference).pixels
    final = big_run.final.pixels
    x0, y0, x1, y1 = big_run.roi
    assert (x1 - x0) * (y1 - y0) < 0.25 * final.shape[0] * final.shape[1]
    assert big_run.region[y0:y1, x0:x1].sum() == big_run.region.sum()  # the region lies inside the box
    outside = np.ones(final.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(final[outside], reference[outside])
    np.testing.assert_array_equal(big_run.stages["pasted"][outside], reference[outside])


@pytest.mark.slow
def test_the_project_stores_the_pasted_stage_as_its_crop_and_gives_it_back_whole(tmp_path, big_run) -> None:
    project = Project.create(tmp_path / "p")
    output_id = project.record_run(big_run)
    project.close()
    with Project.open(tmp_path / "p") as project:
        out = project.output(output_id)
        x0, y0, x1, y1 = big_run.roi
        assert out.stage_offsets["pasted"] == (x0, y0) and out.stage_offsets["A"] == (0, 0)
        crop = load_image(project.path_of(out.stages["pasted"])).pixels
        assert crop.shape[:2] == (y1 - y0, x1 - x0)
        final = load_image(project.path_of(out.final_path)).pixels
        np.testing.assert_array_equal(final, big_run.final.pixels)
        np.testing.assert_array_equal(stage_pixels(crop, out.stage_offsets["pasted"], final),
                                      big_run.stages["pasted"])


def test_a_project_from_before_stage_crops_migrates_and_its_whole_stage_images_still_show(tmp_path, astronaut) -> None:
    root = tmp_path / "v2"
    project = Project.create(root)
    output_id = project.record_output(request={"engine": "classic"}, engine="classic", final=astronaut,
                                      stages={"pasted": astronaut[::-1].copy()})
    project.close()
    con = sqlite3.connect(root / "project.db", isolation_level=None)  # as schema 3 left it: no crop offsets
    rows = con.execute("SELECT output_id, name, file_sha FROM output_stages").fetchall()
    con.execute("DROP TABLE output_stages")
    for statement in _statements(MIGRATIONS[1]):
        if "CREATE TABLE output_stages" in statement:
            con.execute(statement)
    con.executemany("INSERT INTO output_stages VALUES (?, ?, ?)", rows)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    con.close()
    with Project.open(root) as project:
        assert project.db.one("PRAGMA user_version")[0] == SCHEMA_VERSION
        out = project.output(output_id)
        assert out.stage_offsets == {"pasted": (0, 0)}
        stored = load_image(project.path_of(out.stages["pasted"])).pixels
        np.testing.assert_array_equal(stage_pixels(stored, (0, 0), astronaut), astronaut[::-1])


@pytest.mark.slow
def test_saving_a_run_reports_progress_and_a_cancel_records_nothing(tmp_path, big_run) -> None:
    project = Project.create(tmp_path / "p")
    seen: list[float] = []

    def cancel_halfway(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.4:
            raise Cancelled()
    with pytest.raises(Cancelled):
        project.record_run(big_run, on_progress=cancel_halfway)
    assert list_outputs(project).total == 0 and seen and seen == sorted(seen)
    fractions: list[float] = []
    project.record_run(big_run, on_progress=fractions.append)
    assert list_outputs(project).total == 1 and fractions[-1] < 1.0 and len(fractions) > 3
    project.close()


@pytest.mark.slow
def test_export_reports_progress_and_a_cancel_writes_nothing(tmp_path, big_run) -> None:
    project = Project.create(tmp_path / "p")
    output_id = project.record_run(big_run)
    steps: list[tuple[float, str]] = []
    path = export_output(project, output_id, tmp_path / "out.png", on_progress=lambda f, what: steps.append((f, what)))
    assert path.is_file() and steps[0][0] == 0.0 and steps[-1][0] == 1.0
    assert [f for f, _ in steps] == sorted(f for f, _ in steps) and len(steps) > 4

    def cancel(fraction: float, what: str) -> None:
        if fraction > 0.5:
            raise Cancelled()
    for suffix in (".png", ".tif"):
        with pytest.raises(Cancelled):
            export_output(project, output_id, tmp_path / f"cancelled{suffix}", on_progress=cancel)
        assert not (tmp_path / f"cancelled{suffix}").exists()
    project.close()


def test_a_long_call_is_left_behind_when_cancelled() -> None:
    token, release, finished = CancelToken(), threading.Event(), threading.Event()

    def long_call() -> str:
        release.wait(10)
        finished.set()
        return "done"
    threading.Timer(0.1, token.cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        run_cancellable(token, long_call)
    assert not finished.is_set()  # it stopped waiting while the call still ran
    release.set()
    assert finished.wait(5) and time.monotonic() - started < 5
    assert run_cancellable(CancelToken(), lambda a, b: a + b, 2, b=3) == 5
    with pytest.raises(ZeroDivisionError):
        run_cancellable(CancelToken(), lambda: 1 / 0)


@pytest.mark.slow
def test_scene_of_a_camera_file_holds_no_float_copy_of_it(big_reference, photo_files) -> None:
    identity = tuple(str(p) for p in sorted(photo_files["identity"].iterdir()))
    scene: Scene
    scene, _ = load_scene(RunRequest(identity=identity, reference=str(big_reference)), Reporter())
    assert scene.picture.pixels.dtype == np.uint8 and scene.crop.image.shape == (512, 512, 3)
    assert scene.crop.image.dtype == np.float32
