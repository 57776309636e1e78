from __future__ import annotations

import cv2
import numpy as np
import pytest

from megaportrait_desktop.core import landmarks as L
from megaportrait_desktop.core.align import crop_face, transform_points, warp_to_full
from megaportrait_desktop.core.errors import FaceError, ModelMissingError
from megaportrait_desktop.core.face import choose_face, detect_faces
from megaportrait_desktop.core.masks import face_mask, feather, grow


def _check_anatomy(face, image_shape) -> None:
    lm = face.landmarks
    assert lm.shape == (478, 3) and lm.dtype == np.float32
    h, w = image_shape[:2]
    assert (lm[:, 0] >= -1).all() and (lm[:, 0] <= w + 1).all() and (lm[:, 1] >= -1).all() and (lm[:, 1] <= h + 1).all()
    # Eyes above the nose tip, above the mouth, above the chin; image-left eye is on the left.
    assert lm[L.LEFT_IRIS, 0] < lm[L.RIGHT_IRIS, 0]
    eye_y = (lm[L.LEFT_IRIS, 1] + lm[L.RIGHT_IRIS, 1]) / 2
    assert eye_y < lm[L.NOSE_TIP, 1] < lm[L.UPPER_LIP, 1] < lm[L.CHIN, 1]
    # The iris centres sit inside their eye outlines' boxes.
    for iris, eye in ((L.LEFT_IRIS, L.LEFT_EYE), (L.RIGHT_IRIS, L.RIGHT_EYE)):
        pts = lm[list(eye), :2]
        assert pts[:, 0].min() < lm[iris, 0] < pts[:, 0].max()


def test_detects_one_face_with_478_landmarks_on_both_photos(astronaut, grace, astronaut_face, grace_face) -> None:
    assert len(detect_faces(astronaut)) == 1 and len(detect_faces(grace)) == 1
    _check_anatomy(astronaut_face, astronaut.shape)
    _check_anatomy(grace_face, grace.shape)
    # Eileen Collins' pupils, read off the 512² photo by eye: about (203, 101) and (247, 103).
    assert np.allclose(astronaut_face.landmarks[L.LEFT_IRIS, :2], (203, 101), atol=4)
    assert np.allclose(astronaut_face.landmarks[L.RIGHT_IRIS, :2], (247, 103), atol=4)
    assert 0.85 < astronaut_face.score <= 1 and 0.7 < grace_face.score <= 1
    yaw, pitch, roll = grace_face.pose
    assert abs(yaw) < 15 and abs(roll) < 10  # a frontal portrait


def test_several_faces_largest_first_any_by_index(astronaut, grace) -> None:
    canvas = np.full((700, 1400, 3), 235, np.uint8)
    canvas[50:650, 0:512] = grace
    canvas[100:612, 560:1072] = astronaut
    small = cv2.resize(grace, (256, 300), interpolation=cv2.INTER_AREA)
    canvas[200:500, 1120:1376] = small
    faces = detect_faces(canvas)
    assert len(faces) == 3
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)
    assert choose_face(faces) is faces[0]
    assert choose_face(faces, 2) is faces[2]
    centres = [((f.box[0] + f.box[2]) / 2) for f in faces]
    assert centres[0] < 512 and centres[2] > 1120  # the big Grace Hopper first, the small one last
    with pytest.raises(FaceError, match="Face 4 was asked for, but the photo has 3"):
        choose_face(faces, 3)


def test_no_face() -> None:
    rng = np.random.default_rng(0)
    landscape = cv2.GaussianBlur(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8), (0, 0), 4)
    assert detect_faces(landscape) == []
    with pytest.raises(FaceError, match="No face"):
        choose_face([])


def test_insightface_detector_names_the_missing_pack(astronaut, tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="buffalo_l") as info:
        detect_faces(astronaut, detector="insightface", models_dir=tmp_path)
    assert "det_10g.onnx" in str(info.value) and str(tmp_path) in str(info.value)


def test_crop_is_upright_square_and_round_trips_points_exactly(astronaut, astronaut_face) -> None:
    crop = crop_face(astronaut, astronaut_face.landmarks, 512)
    assert crop.image.shape == (512, 512, 3) and crop.image.dtype == np.uint8
    in_crop = crop.to_crop(astronaut_face.landmarks)
    assert abs(in_crop[L.LEFT_IRIS, 1] - in_crop[L.RIGHT_IRIS, 1]) < 2  # eyes level
    np.testing.assert_allclose(crop.to_full(in_crop)[:, :2], astronaut_face.landmarks[:, :2], atol=1e-6)
    crop256 = crop_face(astronaut, astronaut_face.landmarks, 256)
    assert crop256.image.shape == (256, 256, 3) and abs(crop256.scale * 2 - crop.scale) < 1e-9


def test_crop_then_paste_back_lands_within_one_pixel(grace, grace_face) -> None:
    # A one-pixel marker on the nose tip: find it in the crop, map back, and find it after paste-back.
    marked = grace.copy()
    x, y = np.round(grace_face.landmarks[L.NOSE_TIP, :2]).astype(int)
    marked[y, x] = (255, 0, 255)
    crop = crop_face(marked, grace_face.landmarks, 512)
    magenta = crop.image[..., 0].astype(int) + crop.image[..., 2] - 2 * crop.image[..., 1].astype(int)
    cy, cx = np.unravel_index(np.argmax(magenta), magenta.shape)
    back = crop.to_full(np.array([[cx, cy]], np.float64))[0]
    assert np.hypot(back[0] - x, back[1] - y) <= 1.0
    # Pixels: crop → paste back reproduces the face region (interpolation error only).
    patch, (x0, y0, x1, y1) = warp_to_full(crop_face(grace, grace_face.landmarks, 512).image, crop)
    bx0, by0, bx1, by1 = (int(v) for v in grace_face.box)
    diff = np.abs(patch[by0 - y0:by1 - y0, bx0 - x0:bx1 - x0].astype(int) - grace[by0:by1, bx0:bx1])
    assert diff.mean() < 1.5 and np.percentile(diff, 99) < 12


def test_default_mask_from_the_face_oval(astronaut, astronaut_face) -> None:
    shape = astronaut.shape[:2]
    mask = face_mask(astronaut_face.landmarks, shape)
    assert mask.dtype == np.float32 and mask.shape == shape and set(np.unique(mask)) <= {0.0, 1.0}
    lm = astronaut_face.landmarks
    for point in (L.NOSE_TIP, L.LEFT_IRIS, L.RIGHT_IRIS, L.UPPER_LIP):
        assert mask[int(lm[point, 1]), int(lm[point, 0])] == 1.0
    assert mask[5, 5] == 0.0 and mask[int(lm[L.CHIN, 1]) + 10, int(lm[L.CHIN, 0])] == 0.0
    grown = face_mask(lm, shape, grow_px=6)
    shrunk = face_mask(lm, shape, grow_px=-6)
    assert shrunk.sum() < mask.sum() < grown.sum()
    assert ((shrunk <= mask) & (mask <= grown)).all()
    soft = face_mask(lm, shape, feather_px=4)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 200 and soft.min() >= 0 and soft.max() <= 1
    assert np.allclose(grow(mask, 0), mask) and np.allclose(feather(mask, 0), mask)


def test_inner_geometry_is_scale_and_rotation_free(grace_face, astronaut_face) -> None:
    lm = grace_face.landmarks.astype(np.float64)
    angle = np.radians(20)
    matrix = 1.7 * np.array([[np.cos(angle), -np.sin(angle), 30], [np.sin(angle), np.cos(angle), -12]])
    matrix[:, 2] = (30, -12)
    moved = transform_points(lm, matrix)
    assert L.geometry_distance(lm, moved) < 1e-9
    assert L.geometry_distance(lm, astronaut_face.landmarks) > 0.02  # two different people
