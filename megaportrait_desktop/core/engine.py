"""The one interface both engines implement, and the data that flows between the stages.

The orchestrator (:mod:`.pipeline`) loads the inputs, crops the face, pastes through the mask,
scores and fills the stage images once for every engine; an engine only answers the three stage
calls of DESIGN.md §2 (identity pair, shading, harmonisation), plus the automatic mask its face
geometry needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .align import FaceCrop
from .face import Face
from .imaging import Picture
from .progress import Reporter
from .request import RunRequest


@dataclass(frozen=True, eq=False)
class SourcePhoto:
    """One identity photo with its chosen face: float32 RGB in ``[0, 1]``."""

    rgb: np.ndarray
    face: Face
    name: str = ""
    #: Faces found in the photo (the largest is ``face``).
    face_count: int = 1


@dataclass(frozen=True, eq=False)
class Scene:
    """What every stage works on: the reference, its chosen face and crop, and the identity photos."""

    request: RunRequest
    picture: Picture
    face: Face
    crop: FaceCrop
    sources: list[SourcePhoto]
    models_dir: Path | None = None

    @property
    def crop_rgb(self) -> np.ndarray:
        """The reference crop as float32 RGB clipped to ``[0, 1]``."""
        return np.clip(self.crop.image, 0.0, 1.0).astype(np.float32)


@dataclass(frozen=True, eq=False)
class FaceMaps:
    """What an engine measured of the two faces of a pair, in crop space (the classic engine's relighting).

    Attributes
    ----------
    a_landmarks:
        The reference face's landmarks in A (after its outline was moved onto the client's).
    a_skin, b_skin:
        Float32 ``[0, 1]``: the skin each face's light is measured on (no eyes, brows, lips or hair).
    hair_free:
        Float32 ``[0, 1]``: 0 where either face has hair (a fringe, the temples), which B's face must not cover.
    extent:
        Float32 ``[0, 1]``: where A differs from the reference crop (the moved outline); ``None`` if nowhere.
    """

    a_landmarks: np.ndarray
    a_skin: np.ndarray
    b_skin: np.ndarray
    hair_free: np.ndarray
    extent: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Pair:
    """Identity Net: A (reference-like) and B (client-like), in crop space."""

    a: np.ndarray
    b: np.ndarray
    #: Which identity photo B came from (it is no evidence of identity when scoring).
    source_index: int
    #: The client's face landmarks in crop coordinates (B's geometry), where the engine knows them.
    b_landmarks: np.ndarray | None = None
    #: What the engine measured of both faces (skin, hair, the moved outline), where it did.
    maps: FaceMaps | None = None


@dataclass(frozen=True, eq=False)
class Shading:
    """Shading Net: the light map of A, the HF-map of B (around 0) and the face they make, in crop space."""

    light: np.ndarray
    hf: np.ndarray
    shaded: np.ndarray


@dataclass(frozen=True, eq=False)
class Pasted:
    """The shaded face pasted into the reference through the mask.

    Attributes
    ----------
    roi:
        ``(x0, y0, x1, y1)``: the part of the full image the paste and harmonisation may change.
    mask:
        The paste mask over ``roi`` (float32 ``[0, 1]``).
    mask_crop:
        The same mask in crop space.
    shaded:
        The shaded face (crop space) that was pasted.
    pixels:
        The full image with the face pasted (the reference's dtype; outside the mask, its own pixels).
    roi_float:
        ``pixels[roi]`` before it was quantised to the reference's dtype (float32).
    """

    roi: tuple[int, int, int, int]
    mask: np.ndarray
    mask_crop: np.ndarray
    shaded: np.ndarray
    pixels: np.ndarray
    roi_float: np.ndarray


@dataclass(frozen=True, eq=False)
class Harmonized:
    """Harmonization Net: new pixels for the ROI and where they apply (elsewhere the pasted pixels stay)."""

    window: np.ndarray
    region: np.ndarray


class Engine(Protocol):
    """An engine: the three stages of DESIGN.md §2 on a :class:`Scene`.

    ``prepare`` runs first (the diffusion engine loads its models and pins their hashes into the
    request it returns); each stage call reports progress under its own step name and checks
    for cancellation through ``reporter``.
    """

    name: str

    def prepare(self, scene: Scene, reporter: Reporter) -> tuple[RunRequest, list[str]]:
        """The request as run (models named and pinned), and warnings for the user."""
        ...

    def identity_pair(self, scene: Scene, reporter: Reporter) -> Pair: ...

    def shading(self, scene: Scene, pair: Pair, reporter: Reporter) -> Shading: ...

    def auto_mask(self, scene: Scene, pair: Pair) -> np.ndarray:
        """The automatic paste mask in crop space (used when the request carries no user mask)."""
        ...

    def harmonize(self, scene: Scene, pasted: Pasted, seam_px: float, reporter: Reporter) -> Harmonized: ...

    def models_used(self) -> dict[str, dict[str, str]]:
        """Every model the last run used, by role: ``{"path", "sha256"}`` (empty for the classic engine)."""
        ...
