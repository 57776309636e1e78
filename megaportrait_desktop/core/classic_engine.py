"""The classic engine behind the :class:`~.engine.Engine` interface: the stages of :mod:`.classic` on a scene."""

from __future__ import annotations

import cv2
import numpy as np

from . import classic
from .engine import Harmonized, Pair, Pasted, Scene, Shading
from .imaging import from_float, to_float
from .progress import Reporter, run_cancellable
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
        reporter("harmonize", 0, 2, "Blending the seam")
        x0, y0, x1, y1 = pasted.roi
        margin = 3.0 / scene.crop.scale
        # Only the mask and the seam band around it can change: work on that box of the ROI (a third of it
        # on a portrait), padded so that every step sees what it saw on the whole ROI. The result is the same.
        bx0, by0, bx1, by1 = _box_around(pasted.mask > 0, max(seam_px, margin) + 6)
        mask = pasted.mask[by0:by1, bx0:bx1]
        reference = scene.picture.pixels[y0 + by0:y0 + by1, x0 + bx0:x0 + bx1]
        reporter("harmonize", 1, 2, "Blending the seam")
        # One long OpenCV call (the Poisson solve) inside: run so that a cancel need not wait for it.
        out, region = run_cancellable(reporter.cancel, classic.harmonize, pasted.roi_float[by0:by1, bx0:bx1],
                                      to_float(reference), mask, scene.request.harmonize, seam_px)
        window = np.zeros(pasted.roi_float.shape, reference.dtype)  # outside ``region`` nothing is taken from it
        window[by0:by1, bx0:bx1] = from_float(out, reference.dtype)
        whole = np.zeros(pasted.mask.shape[:2], bool)
        whole[by0:by1, bx0:bx1] = region
        return Harmonized(window=window, region=whole)

    def models_used(self) -> dict[str, dict[str, str]]:
        return {}


def _box_around(inside: np.ndarray, pad: float) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the bounding box of ``inside`` grown by ``pad`` pixels, within the array."""
    x, y, w, h = cv2.boundingRect(inside.astype(np.uint8))
    p = int(np.ceil(pad))
    height, width = inside.shape[:2]
    return max(0, x - p), max(0, y - p), min(width, x + w + p), min(height, y + h + p)
