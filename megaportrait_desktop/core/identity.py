"""Identity embeddings: the backends that turn a face into a vector, and distances between them.

Two backends:
- ``dlib`` (the default, installed with the app, public domain): dlib's ResNet, 128-d descriptors
  compared by Euclidean distance, same person below 0.6 (:mod:`.dlib_recogniser`);
- ``arcface`` (optional): insightface's ArcFace (``w600k_r50.onnx`` from the ``buffalo_l`` pack, for
  non-commercial research only, so used only when the pack is installed and its licence accepted),
  unit-length 512-d embeddings compared by cosine distance.

:mod:`.identity_report` turns distances into the report every output gets.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from .errors import ModelMissingError
from .face import Face, require_buffalo_l
from .landmarks import five_points

BACKENDS = ("dlib", "arcface")
DEFAULT_BACKEND = "dlib"


class EmbeddingBackend(Protocol):
    """Turns one face into an identity embedding.

    ``metric`` says how two embeddings are compared (``"euclidean"`` or ``"cosine"``, see
    :func:`distance`) and ``threshold`` is the distance below which they count as one person.
    """

    name: str
    metric: str
    threshold: float

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray: ...


class ArcFaceBackend:
    """insightface ArcFace on onnxruntime (CPU, or CUDA when onnxruntime-gpu is installed)."""

    name = "arcface-buffalo_l"
    metric = "cosine"
    #: insightface's usual verification threshold (cosine similarity about 0.35); not calibrated here,
    #: as no machine of this project can have the pack.
    threshold = 0.65

    def __init__(self, model_file: Path) -> None:
        import onnxruntime
        from insightface.model_zoo.arcface_onnx import ArcFaceONNX

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in onnxruntime.get_available_providers()]
        session = onnxruntime.InferenceSession(str(model_file), providers=providers)
        self._model = ArcFaceONNX(model_file=str(model_file), session=session)
        self._lock = threading.Lock()  # one onnxruntime session, used from any worker thread

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        from insightface.utils.face_align import norm_crop

        bgr = cv2.cvtColor(np.ascontiguousarray(rgb[:, :, :3]), cv2.COLOR_RGB2BGR)
        aligned = norm_crop(bgr, five_points(face.landmarks), image_size=self._model.input_size[0])
        with self._lock:
            feat = self._model.get_feat(aligned).ravel().astype(np.float32)
        return normalise(feat)


_backends: dict[Path, ArcFaceBackend] = {}
_backends_lock = threading.Lock()


def load_embedding_backend(models_dir: Path | None = None, name: str = DEFAULT_BACKEND) -> EmbeddingBackend:
    """The backend ``name``: ``"dlib"`` (default, always installed) or ``"arcface"`` (the ``buffalo_l`` pack).

    Raises
    ------
    ModelMissingError
        Naming what is missing and what to do (a damaged install, the pack not installed, or its
        licence not accepted yet).
    """
    if name not in BACKENDS:
        raise ModelMissingError(f"Unknown identity backend {name!r}; use one of {', '.join(BACKENDS)}.")
    if name == "dlib":
        from .dlib_recogniser import load_dlib_backend

        return load_dlib_backend()
    path = require_buffalo_l(models_dir, "ArcFace recognition")
    with _backends_lock:
        if path not in _backends:
            _backends[path] = ArcFaceBackend(path)
        return _backends[path]


def available_backend(models_dir: Path | None = None,
                      name: str = DEFAULT_BACKEND) -> tuple[EmbeddingBackend | None, str]:
    """``(backend, "")`` when it is installed, else ``(None, why)`` for the UI to show."""
    try:
        return load_embedding_backend(models_dir, name), ""
    except ModelMissingError as exc:
        return None, str(exc)


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def identity_embedding(embeddings: list[np.ndarray]) -> np.ndarray:
    """The identity set's embedding: the normalised mean of its photos' unit embeddings."""
    if not embeddings:
        raise ValueError("an identity needs at least one embedding")
    return normalise(np.mean([normalise(e) for e in embeddings], axis=0))


def identity_score(embedding: np.ndarray, identity: np.ndarray) -> float:
    """Cosine similarity of a face's embedding to the identity's mean embedding, in ``[-1, 1]``."""
    return float(np.dot(normalise(embedding), normalise(identity)))


def distance(a: np.ndarray, b: np.ndarray, metric: str) -> float:
    """The distance between two embeddings: Euclidean (dlib), or ``1 − cosine similarity`` (ArcFace)."""
    if metric == "euclidean":
        return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
    if metric == "cosine":
        return 1.0 - float(np.dot(normalise(np.asarray(a, np.float64)), normalise(np.asarray(b, np.float64))))
    raise ValueError(f"unknown metric {metric!r}")


def mean_distance(embedding: np.ndarray, others: list[np.ndarray], metric: str) -> float | None:
    """The mean distance from ``embedding`` to each of ``others`` (``None`` when there are none).

    Each photo is compared on its own, as the 0.6 threshold is defined for pairs of photos; a mean
    embedding would sit closer to everything and make every face look more alike.
    """
    if not others:
        return None
    return float(np.mean([distance(embedding, other, metric) for other in others]))
