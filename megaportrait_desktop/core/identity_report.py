"""The identity report every output gets: is the face the client's, still the reference person's, or a mix?

Distances follow the backend's convention (dlib: Euclidean distance of 128-d descriptors, below 0.6 =
same person). Three are measured from the output face:

- to the client's identity set (every photo, the source included);
- to the held-out photos: the set less the photo the run used as its source. The source was pasted in,
  so matching it proves little; only a photo the run never saw is evidence. ``None`` with a one-photo set;
- to the person in the reference (the reference's own face, before the run).

The verdict reads the client distance (held-out where there is one) and the reference distance against
the backend's same-person threshold (0.6 for dlib; calibrated in README, "Identity report"):

- **the client**: within the threshold of the client and not of the reference person;
- **still the reference person**: within the threshold of the reference person and not of the client;
- **a mix**: both, or neither (the identity moved off the reference but did not reach the client).

When the reference shows the client too (its face within the threshold of the client's photos), nearness
to the reference person is nearness to the client: the client distance alone decides, and the report warns
that it cannot tell the two apart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .face import Face, detect_faces
from .identity import EmbeddingBackend, available_backend, distance, mean_distance
from .quality import SetPhoto, check_identity_set

CLIENT, MIX, REFERENCE = "client", "mix", "reference"
VERDICTS = (CLIENT, MIX, REFERENCE)
#: What a photographer reads, by verdict code.
VERDICT_LABELS = {CLIENT: "the client", MIX: "a mix", REFERENCE: "still the reference person"}
REPORT_VERSION = 1


@dataclass(frozen=True)
class IdentityReport:
    """Who the output face looks like, by distance (smaller = more alike).

    Attributes
    ----------
    backend, metric, threshold:
        The recogniser, its distance and its same-person threshold.
    set_distance:
        Mean distance from the output face to each photo of the identity set (the source included).
    held_out_distance:
        Mean distance to the photos the run did not use as its source; ``None`` for a one-photo set.
    held_out_count:
        How many photos that mean is over.
    reference_distance:
        Distance to the face in the reference before the run; ``None`` when it could not be measured.
    verdict:
        ``"client"``, ``"mix"`` or ``"reference"`` (see :data:`VERDICT_LABELS`).
    source_index:
        Which photo of the set the run used (not evidence), when known.
    warnings:
        Problems of the identity set that make a run likely to fail (one photo, near-duplicates, ...).
    """

    backend: str
    metric: str
    threshold: float
    set_distance: float
    held_out_distance: float | None
    held_out_count: int
    reference_distance: float | None
    verdict: str
    source_index: int | None = None
    warnings: tuple[str, ...] = ()
    version: int = REPORT_VERSION

    @property
    def client_distance(self) -> float:
        """The distance the verdict reads: to the held-out photos where there are any, else to the set."""
        return self.held_out_distance if self.held_out_distance is not None else self.set_distance

    @property
    def held_out(self) -> bool:
        return self.held_out_distance is not None

    @property
    def score(self) -> float:
        """The single number History sorts by: similarity to the client, ``1 − client distance``."""
        return 1.0 - self.client_distance

    @property
    def label(self) -> str:
        return VERDICT_LABELS[self.verdict]

    def summary(self) -> str:
        """One line: the verdict and the distances, for the command line and tooltips."""
        client = f"{self.client_distance:.2f} to the client" + ("" if self.held_out else " (its own set: no "
                                                                   "held-out photo)")
        ref = "" if self.reference_distance is None else f", {self.reference_distance:.2f} to the reference person"
        return f"{self.label} (distance {client}{ref}; same person below {self.threshold:g})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str) -> IdentityReport:
        if isinstance(data, str):
            data = json.loads(data)
        data = dict(data)
        data["warnings"] = tuple(data.get("warnings", ()))
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def verdict_of(client_distance: float, reference_distance: float | None, threshold: float) -> str:
    """``"client"``, ``"reference"`` or ``"mix"`` from the two distances (see the module docstring).

    With no reference distance, the client distance alone decides between the client and a mix.
    """
    is_client = client_distance < threshold
    is_reference = reference_distance is not None and reference_distance < threshold
    if is_client and not is_reference:
        return CLIENT
    if is_reference and not is_client:
        return REFERENCE
    return MIX


@dataclass(frozen=True, eq=False)
class SourceFace:
    """One identity photo as the report needs it: 8-bit RGB and its chosen face (largest first)."""

    rgb: np.ndarray
    face: Face
    name: str = ""
    face_count: int = 1


def output_face(rgb: np.ndarray, near: Face) -> Face:
    """The face in the output where the reference face was; the reference's own geometry if none is found
    (the pasted face sits exactly there).

    Only the face's neighbourhood is searched (its box and as much again on each side): MediaPipe holds
    Python's GIL while it looks, and over a whole camera file that stalled the app's window."""
    x0, y0, x1, y1 = near.box
    margin = max(x1 - x0, y1 - y0)
    h, w = rgb.shape[:2]
    left, top = max(0, int(x0 - margin)), max(0, int(y0 - margin))
    right, bottom = min(w, int(np.ceil(x1 + margin))), min(h, int(np.ceil(y1 + margin)))
    if right - left < 2 or bottom - top < 2:
        return near
    faces = [_moved(face, left, top) for face in detect_faces(np.ascontiguousarray(rgb[top:bottom, left:right]))]
    if not faces:
        return near
    return min(faces, key=lambda f: np.hypot(f.box[0] - near.box[0], f.box[1] - near.box[1]))


def _moved(face: Face, dx: float, dy: float) -> Face:
    x0, y0, x1, y1 = face.box
    return Face((x0 + dx, y0 + dy, x1 + dx, y1 + dy), face.score,
                face.landmarks + np.array([dx, dy, 0.0], np.float32))


def assess(output_rgb: np.ndarray, reference_rgb: np.ndarray | None, reference_face: Face,
           sources: Sequence[SourceFace], source_index: int | None = None,
           backend: EmbeddingBackend | None = None, models_dir: Path | None = None,
           held_out: Sequence[SourceFace] | None = None) -> IdentityReport | None:
    """The identity report of an output.

    Parameters
    ----------
    output_rgb, reference_rgb:
        The output and the reference before the run (8-bit RGB, the same geometry).
    reference_face:
        The face the run replaced.
    sources:
        The identity set the run was given; ``source_index`` is the photo it used.
    backend:
        The recogniser (default: the default backend); ``None`` is returned when it is not installed.
    held_out:
        Photos of the client the run was not given (``evaluate``'s leave-one-out); by default the set less
        the source photo.
    """
    if backend is None:
        backend, _ = available_backend(models_dir)
        if backend is None:
            return None
    out = backend.embed(output_rgb, output_face(output_rgb, reference_face))
    embeddings = [backend.embed(s.rgb, s.face) for s in sources]
    if held_out is None:
        evidence = [e for i, e in enumerate(embeddings) if i != source_index] if source_index is not None \
            and len(sources) > 1 else []
    else:
        evidence = [backend.embed(h.rgb, h.face) for h in held_out]
    set_distance = mean_distance(out, embeddings, backend.metric)
    held_out_distance = mean_distance(out, evidence, backend.metric)
    reference_distance = reference_to_client = None
    if reference_rgb is not None:
        reference = backend.embed(reference_rgb, reference_face)
        reference_distance = distance(out, reference, backend.metric)
        reference_to_client = mean_distance(reference, embeddings, backend.metric)
    reference_is_client = reference_to_client is not None and reference_to_client < backend.threshold
    client = held_out_distance if held_out_distance is not None else set_distance
    issues = check_identity_set(
        [SetPhoto(s.name or f"photo {i + 1}", s.face.landmarks, e, s.face_count)
         for i, (s, e) in enumerate(zip(sources, embeddings, strict=True))],
        reference_face.landmarks, metric=backend.metric)
    warnings = tuple(issue.message for issue in issues)
    if reference_is_client:
        warnings += (f"The reference shows the client too (distance {reference_to_client:.2f}): the report cannot "
                     "tell the client from the reference person, so its verdict reads the distance to the "
                     "client alone.",)
    return IdentityReport(
        backend=backend.name, metric=backend.metric, threshold=backend.threshold, set_distance=float(set_distance),
        held_out_distance=held_out_distance, held_out_count=len(evidence), reference_distance=reference_distance,
        verdict=verdict_of(client, None if reference_is_client else reference_distance,
                           backend.threshold),
        source_index=source_index, warnings=warnings)


def assess_run(final_rgb: np.ndarray, reference_rgb: np.ndarray | None, reference_face: Face, sources: Sequence,
               source_index: int | None, models_dir: Path | None = None) -> IdentityReport | None:
    """:func:`assess` for a pipeline run: ``sources`` are the engine's source photos (float RGB with a face)."""
    from .imaging import to_uint8

    faces = [SourceFace(to_uint8(s.rgb), s.face, getattr(s, "name", ""), getattr(s, "face_count", 1))
             for s in sources]
    return assess(final_rgb, reference_rgb, reference_face, faces, source_index, models_dir=models_dir)
