"""Face detection and the 478-point face mesh.

MediaPipe's models ship in its wheel (release 0.10.21), so detection always works offline. When
insightface's ``buffalo_l`` pack is installed in the models folder, its detector can be used
instead (``detector="insightface"``); the mesh always comes from MediaPipe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import FaceError, ModelMissingError
from .landmarks import head_pose

#: Long side the detector sees; big photos are reduced first (detection needs no more).
DETECT_SIZE = 1280
#: Long side of the square around each face that the mesh model sees.
MESH_SIZE = 512
MAX_FACES = 10
#: Images with a shorter side than this hold no detectable face (and strips break the detectors).
MIN_SIDE = 16
MIN_DETECTION_CONFIDENCE = 0.5

BUFFALO_L_FILES = {"det_10g.onnx": "detection", "w600k_r50.onnx": "ArcFace recognition"}


@dataclass(frozen=True, eq=False)
class Face:
    """One face in an image, in that image's pixel coordinates.

    Attributes
    ----------
    box:
        ``(x0, y0, x1, y1)`` of the detection.
    score:
        Detector confidence in ``[0, 1]``.
    landmarks:
        ``(478, 3)`` float32: x and y in pixels, z (depth) on x's scale.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    @property
    def size(self) -> float:
        """The shorter side of the box, in pixels."""
        x0, y0, x1, y1 = self.box
        return min(x1 - x0, y1 - y0)

    @property
    def pose(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) in degrees; see :func:`landmarks.head_pose`."""
        return head_pose(self.landmarks)

    def to_json(self) -> dict:
        yaw, pitch, roll = self.pose
        return {"box": [round(v, 2) for v in self.box], "score": round(self.score, 4),
                "pose": {"yaw": round(yaw, 2), "pitch": round(pitch, 2), "roll": round(roll, 2)},
                "landmarks": np.round(self.landmarks, 2).tolist()}


class _MediaPipe(threading.local):
    """MediaPipe graphs are not thread-safe: one set per thread, built on first use."""

    def __init__(self) -> None:
        self.detector = None
        self.mesh = None

    def get(self):
        if self.detector is None:
            face_detection, face_mesh = _import_mediapipe()

            # model_selection=1: the full-range model, for faces up to ~5 m (portraits, group shots).
            self.detector = face_detection.FaceDetection(
                model_selection=1, min_detection_confidence=MIN_DETECTION_CONFIDENCE)
            self.mesh = face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=True,
                                           min_detection_confidence=0.3)
        return self.detector, self.mesh


_mp = _MediaPipe()


def _import_mediapipe():
    """MediaPipe's face solutions, imported without its audio module's ``sounddevice``.

    Importing ``mediapipe`` imports ``sounddevice`` (for audio tasks we never use), which looks for
    PortAudio with ``ctypes.util.find_library``: on Linux that runs ``ldconfig`` and ``gcc`` three times
    per process. A ``None`` in ``sys.modules`` makes that import fail at once as an ImportError, which
    MediaPipe's audio module expects and handles; the entry is removed again afterwards, so code that
    does want ``sounddevice`` can still import it.
    """
    import sys

    blocked = "sounddevice" not in sys.modules
    if blocked:
        sys.modules["sounddevice"] = None  # type: ignore[assignment]
    try:
        from mediapipe.python.solutions import face_detection, face_mesh
    finally:
        if blocked and sys.modules.get("sounddevice", 0) is None:
            del sys.modules["sounddevice"]
    return face_detection, face_mesh


def detect_faces(rgb: np.ndarray, detector: str = "mediapipe", models_dir: Path | None = None) -> list[Face]:
    """All faces with a mesh, largest first.

    Parameters
    ----------
    rgb:
        ``(H, W, 3)`` uint8 RGB.
    detector:
        ``"mediapipe"`` (always available) or ``"insightface"`` (needs the ``buffalo_l`` pack).
    models_dir:
        The folder holding ``insightface/models/buffalo_l`` (for ``detector="insightface"``).
    """
    rgb = np.ascontiguousarray(rgb[:, :, :3])
    if rgb.dtype != np.uint8:
        raise TypeError("detect_faces expects uint8 RGB")
    if min(rgb.shape[:2]) < MIN_SIDE:
        return []  # a strip (100000×10, 2600×1): no face fits, and the detectors cannot take it
    if detector == "insightface":
        boxes = _insightface_boxes(rgb, models_dir)
    elif detector == "mediapipe":
        boxes = _mediapipe_boxes(rgb)
    else:
        raise ValueError(f"unknown face detector {detector!r}")
    faces = [face for box, score in boxes if (face := _mesh_in_box(rgb, box, score)) is not None]
    faces = _drop_duplicates(faces)
    return sorted(faces, key=lambda f: f.area, reverse=True)


def choose_face(faces: list[Face], index: int | None = None) -> Face:
    """The face at ``index`` in :func:`detect_faces` order (largest first); ``None`` = the largest."""
    if not faces:
        raise FaceError("No face was found in this photo; choose a photo where the face is clearly visible.")
    index = 0 if index is None else index
    if not 0 <= index < len(faces):
        raise FaceError(f"Face {index + 1} was asked for, but the photo has {len(faces)} face(s).")
    return faces[index]


def _mediapipe_boxes(rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
    detector, _ = _mp.get()
    h, w = rgb.shape[:2]
    scale = min(1.0, DETECT_SIZE / max(h, w))
    # At least one pixel per side: a long, thin image would otherwise round a side to 0, which cv2 refuses.
    small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA) \
        if scale < 1.0 else rgb
    result = detector.process(small)
    boxes = []
    for det in result.detections or []:
        rel = det.location_data.relative_bounding_box
        x0, y0 = rel.xmin * w, rel.ymin * h
        boxes.append(((x0, y0, x0 + rel.width * w, y0 + rel.height * h), float(det.score[0])))
    return boxes[:MAX_FACES]


def _mesh_in_box(rgb: np.ndarray, box: tuple[float, float, float, float], score: float) -> Face | None:
    """Run the mesh on a square around one detection, so several faces each get their own mesh."""
    _, mesh = _mp.get()
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    side = 2.0 * max(x1 - x0, y1 - y0)  # the mesh model wants the whole head with a margin
    if not np.isfinite(side) or side < 1.0:
        return None
    scale = MESH_SIZE / side
    to_square = np.array([[scale, 0, MESH_SIZE / 2 - scale * cx], [0, scale, MESH_SIZE / 2 - scale * cy]])
    square = cv2.warpAffine(rgb, to_square, (MESH_SIZE, MESH_SIZE), flags=cv2.INTER_AREA if scale < 1
                            else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    result = mesh.process(square)
    if not result.multi_face_landmarks:
        return None
    pts = np.array([(p.x, p.y, p.z) for p in result.multi_face_landmarks[0].landmark], np.float32)
    pts *= MESH_SIZE  # normalised → square pixels (z shares x's scale)
    pts[:, 0] = (pts[:, 0] - to_square[0, 2]) / scale
    pts[:, 1] = (pts[:, 1] - to_square[1, 2]) / scale
    pts[:, 2] /= scale
    lx0, ly0 = pts[:, 0].min(), pts[:, 1].min()
    lx1, ly1 = pts[:, 0].max(), pts[:, 1].max()
    # The mesh box (forehead to chin) is tighter and better placed than the detector's.
    box = (max(0.0, float(lx0)), max(0.0, float(ly0)), min(float(w), float(lx1)), min(float(h), float(ly1)))
    return Face(box=box, score=score, landmarks=pts)


def _drop_duplicates(faces: list[Face]) -> list[Face]:
    kept: list[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(_iou(face.box, other.box) < 0.5 for other in kept):
            kept.append(face)
    return kept


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


# ------------------------------------------------------------------------------------- insightface


def buffalo_l_dir(models_dir: Path | None) -> Path:
    """Where the ``buffalo_l`` pack is expected: ``<models>/insightface/models/buffalo_l``."""
    from .paths import models_dir as default_models_dir

    return (models_dir or default_models_dir()) / "insightface" / "models" / "buffalo_l"


def require_buffalo_l(models_dir: Path | None, role: str) -> Path:
    """The path of the pack file serving ``role`` ("detection" or "ArcFace recognition")."""
    pack = buffalo_l_dir(models_dir)
    name = next(n for n, r in BUFFALO_L_FILES.items() if r == role)
    path = pack / name
    if not path.is_file():
        raise ModelMissingError(
            f"insightface model pack 'buffalo_l' is not installed: {name} ({role}) is missing from "
            f"{pack}. Install the pack (Models → Install pack…) or use the MediaPipe detector."
        )
    # insightface's packs are for non-commercial research only: the user accepts that once, before first use.
    from .licences import licence_of, require_accepted

    require_accepted("insightface", licence_of("insightface", pack, models_dir))
    return path


_insightface_lock = threading.Lock()
_insightface_models: dict[Path, object] = {}


def _insightface_boxes(rgb: np.ndarray, models_dir: Path | None):
    path = require_buffalo_l(models_dir, "detection")
    with _insightface_lock:
        model = _insightface_models.get(path)
        if model is None:
            from insightface.model_zoo import model_zoo

            # Load the file directly: insightface's FaceAnalysis would try to download a missing pack.
            model = model_zoo.get_model(str(path), providers=["CPUExecutionProvider"])
            model.prepare(ctx_id=-1, input_size=(640, 640), det_thresh=MIN_DETECTION_CONFIDENCE)
            _insightface_models[path] = model
        bboxes, _ = model.detect(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), max_num=MAX_FACES)
    return [((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(b[4])) for b in bboxes]
