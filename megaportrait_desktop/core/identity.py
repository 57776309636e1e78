"""Identity embeddings and the identity score.

The score is the cosine similarity between a face's embedding and the identity set's mean
embedding. Embeddings come from a backend; the one shipped is insightface's ArcFace
(``w600k_r50.onnx`` from the ``buffalo_l`` pack), used whenever the pack is installed.
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


class EmbeddingBackend(Protocol):
    """Turns one face into a unit-length identity embedding."""

    name: str

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray: ...


class ArcFaceBackend:
    """insightface ArcFace on onnxruntime (CPU, or CUDA when onnxruntime-gpu is installed)."""

    name = "arcface-buffalo_l"

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


def load_embedding_backend(models_dir: Path | None = None) -> EmbeddingBackend:
    """The ArcFace backend from the installed ``buffalo_l`` pack.

    Raises
    ------
    ModelMissingError
        Naming the missing pack and what to do, when it is not installed.
    """
    path = require_buffalo_l(models_dir, "ArcFace recognition")
    with _backends_lock:
        if path not in _backends:
            _backends[path] = ArcFaceBackend(path)
        return _backends[path]


def available_backend(models_dir: Path | None = None) -> tuple[EmbeddingBackend | None, str]:
    """``(backend, "")`` when one is installed, else ``(None, why)`` for the UI to show."""
    try:
        return load_embedding_backend(models_dir), ""
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
