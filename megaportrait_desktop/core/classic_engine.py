"""The classic engine behind the :class:`~.engine.Engine` interface: the stages of :mod:`.classic` on a scene."""

from __future__ import annotations

import numpy as np

from . import classic
from .engine import Harmonized, Pair, Pasted, Scene, Shading
from .imaging import from_float, to_float
from .progress import Reporter
from .request import RunRequest


class ClassicEngine:
    """CPU only, no model weights: the embedded default and the live preview's engine."""

    name = "classic"

    def prepare(self, scene: Scene, reporter: Reporter) -> tuple[RunRequest, list[str]]:
        return scene.request, []

    def identity_pair(self, scene: Scene, reporter: Reporter) -> Pair:
        reporter("identity", 0, 1, "Aligning the best-matching identity photo")
        return classic.identity_pair(scene.crop, scene.crop.image, scene.sources, scene.face,
                                     scene.request.identity_params)

    def shading(self, scene: Scene, pair: Pair, reporter: Reporter) -> Shading:
        reporter("shading", 0, 1, "Separating light and detail")
        return Shading(*classic.relight_face(pair, scene.request.shading, scene.request.mask_params))

    def auto_mask(self, scene: Scene, pair: Pair) -> np.ndarray:
        return classic.relight_mask(pair, scene.request.mask_params)

    def harmonize(self, scene: Scene, pasted: Pasted, seam_px: float, reporter: Reporter) -> Harmonized:
        reporter("harmonize", 0, 1, "Blending the seam")
        x0, y0, x1, y1 = pasted.roi
        reference = scene.picture.pixels[y0:y1, x0:x1]
        out, region = classic.harmonize(pasted.roi_float, to_float(reference), pasted.mask, scene.request.harmonize,
                                        seam_px)
        return Harmonized(window=from_float(out, reference.dtype), region=region)

    def models_used(self) -> dict[str, dict[str, str]]:
        return {}
