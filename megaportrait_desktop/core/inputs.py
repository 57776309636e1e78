"""Reading a run's inputs: the reference and its chosen face, the identity photos, a user mask, the scene."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .align import crop_face
from .engine import Scene, SourcePhoto
from .errors import FaceError, ImageError
from .face import Face, choose_face, detect_faces
from .imaging import Picture, load_image, to_float
from .progress import Reporter
from .request import RunRequest


def load_reference(path: str | Path, face_index: int | None) -> tuple[Picture, list[Face], Face]:
    """The reference picture, its faces (largest first) and the chosen one."""
    picture = load_image(path)
    faces = detect_faces(picture.rgb8())
    if not faces:
        raise FaceError(f"{Path(path).name}: no face found in the reference; choose a portrait with a visible face.")
    return picture, faces, choose_face(faces, face_index)


def load_sources(paths: tuple[str, ...], reporter: Reporter) -> tuple[list[SourcePhoto], list[str]]:
    """The identity photos that have a face; the others are skipped with a warning."""
    sources, warnings = [], []
    for i, path in enumerate(paths):
        reporter("load", i, len(paths), f"Reading identity photo {Path(path).name}")
        try:
            picture = load_image(path)
        except ImageError as exc:
            warnings.append(f"Skipped {exc}")
            continue
        rgb8 = picture.rgb8()
        faces = detect_faces(rgb8)
        if not faces:
            warnings.append(f"Skipped {Path(path).name}: no face found.")
            continue
        sources.append(SourcePhoto(rgb=to_float(picture.pixels), face=faces[0], name=Path(path).name,
                                   face_count=len(faces)))
    if not sources:
        raise FaceError("None of the identity photos has a usable face; add clear photos of the client.")
    return sources, warnings


def load_user_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A user-edited mask PNG (grey or alpha) at the reference's size, as float32 ``[0, 1]``."""
    picture = load_image(path)
    grey = picture.alpha if picture.alpha is not None else picture.pixels[:, :, 0]
    if grey.shape != tuple(shape):
        raise ImageError(f"{Path(path).name}: the mask is {grey.shape[1]}×{grey.shape[0]} but the reference is "
                         f"{shape[1]}×{shape[0]}; reset the mask to the automatic one.")
    return to_float(grey)


def load_scene(request: RunRequest, reporter: Reporter, models_dir: Path | None = None) -> tuple[Scene, list[str]]:
    """Read the reference and the identity photos and crop the reference face at the working size."""
    reporter("load", 0, len(request.identity) + 1, "Reading the reference")
    picture, _, face = load_reference(request.reference, request.face_index)
    sources, warnings = load_sources(request.identity, reporter)
    crop = crop_face(to_float(picture.pixels), face.landmarks, request.crop_size)
    return Scene(request, picture, face, crop, sources, models_dir), warnings
