from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from megaportrait_desktop.core.errors import ModelMissingError
from megaportrait_desktop.core.face import Face, buffalo_l_dir, detect_faces
from megaportrait_desktop.core.identity import (
    available_backend,
    identity_embedding,
    identity_score,
    load_embedding_backend,
)
from megaportrait_desktop.core.quality import check_identity_photo


def test_a_good_identity_photo_passes(grace, grace_face) -> None:
    report = check_identity_photo(grace, [grace_face])
    assert report.ok, report.issues
    assert report.sharpness > 100 and report.face_px > 150


def test_quality_reasons(grace, grace_face, astronaut_face) -> None:
    blurred = cv2.GaussianBlur(grace, (0, 0), 4)
    report = check_identity_photo(blurred, detect_faces(blurred))
    assert "blurry" in report.codes and "sharpness" in report.issues[report.codes.index("blurry")].message

    small = cv2.resize(grace, (128, 150), interpolation=cv2.INTER_AREA)
    assert "face_too_small" in check_identity_photo(small, detect_faces(small)).codes

    assert check_identity_photo(grace, []).codes == ("no_face",)
    assert not check_identity_photo(grace, []).usable

    two = check_identity_photo(grace, [grace_face, astronaut_face])
    assert "several_faces" in two.codes and two.usable


def test_strong_profile_from_a_turned_head(grace, grace_face) -> None:
    # Turn the mesh 50° about the vertical axis through the face centre: the check must see a profile.
    lm = grace_face.landmarks.astype(np.float64)
    centre = lm.mean(0)
    angle = np.radians(50)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    turned = ((lm - centre) @ rot.T + centre).astype(np.float32)
    face = Face(box=grace_face.box, score=grace_face.score, landmarks=turned)
    assert abs(abs(face.pose[0]) - 50) < 8
    report = check_identity_photo(grace, [face])
    assert "strong_profile" in report.codes


def _tiny_arcface(path) -> None:
    """An ONNX model with ArcFace's interface (1×3×112×112 → 1×512), random weights."""
    rng = np.random.default_rng(0)
    conv_w = numpy_helper.from_array(rng.normal(0, 0.1, (8, 3, 8, 8)).astype(np.float32), "conv_w")
    fc_w = numpy_helper.from_array(rng.normal(0, 0.05, (8 * 14 * 14, 512)).astype(np.float32), "fc_w")
    nodes = [
        helper.make_node("Conv", ["data", "conv_w"], ["c"], strides=[8, 8]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "fc_w"], ["fc1"]),
    ]
    graph = helper.make_graph(nodes, "tiny_arcface",
                              [helper.make_tensor_value_info("data", TensorProto.FLOAT, [None, 3, 112, 112])],
                              [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [None, 512])],
                              initializer=[conv_w, fc_w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_missing_pack_is_named(tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="buffalo_l") as info:
        load_embedding_backend(tmp_path, "arcface")
    assert "w600k_r50.onnx" in str(info.value)
    backend, why = available_backend(tmp_path, "arcface")
    assert backend is None and "buffalo_l" in why
    # The default backend (dlib) installs with the app: it is there whatever the models folder holds.
    assert available_backend(tmp_path)[0].name == "dlib-resnet-v1"


def test_identity_score_with_an_arcface_model(tmp_path, grace, grace_face, astronaut, astronaut_face) -> None:
    pack = buffalo_l_dir(tmp_path)
    pack.mkdir(parents=True)
    _tiny_arcface(pack / "w600k_r50.onnx")
    from megaportrait_desktop.core import licences

    # insightface's models are for non-commercial use: the user accepts that once before first use.
    with pytest.raises(licences.LicenceNotAcceptedError):
        load_embedding_backend(tmp_path, "arcface")
    licences.accept("insightface", licences.ROLE_LICENCES["insightface"])
    backend = load_embedding_backend(tmp_path, "arcface")
    assert backend.metric == "cosine"
    e1 = backend.embed(grace, grace_face)
    assert e1.shape == (512,) and abs(np.linalg.norm(e1) - 1) < 1e-5
    np.testing.assert_allclose(backend.embed(grace, grace_face), e1, atol=1e-6)  # deterministic
    mirrored = np.ascontiguousarray(grace[:, ::-1])
    ident = identity_embedding([e1, backend.embed(mirrored, detect_faces(mirrored)[0])])
    assert abs(np.linalg.norm(ident) - 1) < 1e-5
    assert identity_score(e1, e1) == pytest.approx(1.0)
    own = identity_score(e1, ident)
    other = identity_score(backend.embed(astronaut, astronaut_face), ident)
    assert -1 <= other < own <= 1
