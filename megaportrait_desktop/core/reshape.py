"""The reference's face outline moved onto the client's, so the client's face shape survives.

The client's inner face is aligned to the reference's on stable points (eyes, nose, mouth), which keeps
its proportions; but their jaw, cheeks and chin only show if the reference's own outline moves out of
the way. A narrower client pasted into a wider reference otherwise wears the reference's jaw around
their own, and a recogniser reads it. So A (the reference crop) is warped: a thin-plate spline takes the
reference's face-oval points to where the client's are, fading to no displacement a short way outside
the faces, and hair, ears, collar and background follow the new outline smoothly.

Crop space only (the warp is sampled on a coarse grid and enlarged), so it costs a few milliseconds.
The paste mask must then cover everything the warp moved (:attr:`OutlineWarp.extent`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.interpolate import RBFInterpolator

from .landmarks import FACE_OVAL
from .masks import face_mask

#: No oval point moves further than this fraction of the crop (30 pixels at 512): a client photo in
#: another pose has an outline far from the reference's, and following it all the way tears the hair.
MAX_SHIFT = 0.06
#: How far outside the two ovals the warp reaches: this many times the largest shift, within the bounds
#: below (fractions of the crop).
REACH_PER_SHIFT = 2.5
REACH_RANGE = (0.04, 0.15)
#: The warp leaves this band along the crop's border alone (it maps onto the full image's ROI border).
BORDER = 0.03
_GRID = 8  # crop pixels between the spline's samples


@dataclass(frozen=True, eq=False)
class OutlineWarp:
    """A smooth warp of crop space.

    Attributes
    ----------
    offset:
        ``(size, size, 2)`` float32: the output pixel ``p`` takes the input at ``p + offset[p]``.
    extent:
        ``(size, size)`` float32 in ``[0, 1]``: 1 wherever the warp moves anything, fading to 0 where it
        is the identity. A paste through this mask changes nothing the warp did not.
    """

    offset: np.ndarray
    extent: np.ndarray

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (crop space) warped."""
        size = self.offset.shape[0]
        ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
        return cv2.remap(np.ascontiguousarray(image), xs + self.offset[..., 0], ys + self.offset[..., 1],
                         cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Where ``points`` (N, 2+) of the input land in the output (extra columns kept)."""
        size = self.offset.shape[0]
        source = np.asarray(points, np.float64)
        moved = source[:, :2].copy()
        for _ in range(4):  # fixed point of p + offset(p) = source: the offset is smooth and small
            x = np.clip(np.rint(moved[:, 0]).astype(int), 0, size - 1)
            y = np.clip(np.rint(moved[:, 1]).astype(int), 0, size - 1)
            moved = source[:, :2] - self.offset[y, x]
        out = source.copy()
        out[:, :2] = moved
        return out


def outline_warp(reference: np.ndarray, client: np.ndarray, size: int, strength: float = 1.0) -> OutlineWarp | None:
    """The warp that moves the reference's face outline toward the client's (``strength`` 1: onto it).

    ``reference`` and ``client`` are (478, 2+) landmarks in the same crop of ``size`` pixels. ``None``
    when nothing moves (``strength`` 0, or the outlines already agree to a tenth of a pixel).
    """
    oval = list(FACE_OVAL)
    target = np.asarray(client, np.float64)[oval, :2]
    shift = (np.asarray(reference, np.float64)[oval, :2] - target) * float(strength)
    length = np.linalg.norm(shift, axis=1, keepdims=True)
    shift *= np.minimum(1.0, MAX_SHIFT * size / np.maximum(length, 1e-9))
    largest = float(np.linalg.norm(shift, axis=1).max())
    if strength <= 0 or largest < 0.1:
        return None
    reach = float(np.clip(REACH_PER_SHIFT * largest, REACH_RANGE[0] * size, REACH_RANGE[1] * size))

    # The spline, sampled every _GRID pixels and enlarged: smooth, and cheap at any crop size.
    n = size // _GRID + 2
    ys, xs = np.mgrid[0:n, 0:n].astype(np.float64) * _GRID
    spline = RBFInterpolator(target, shift, kernel="thin_plate_spline", smoothing=1.0)
    coarse = spline(np.stack([xs.ravel(), ys.ravel()], axis=1)).reshape(n, n, 2).astype(np.float32)
    offset = cv2.resize(coarse, (n * _GRID, n * _GRID), interpolation=cv2.INTER_LINEAR)[:size, :size]

    # Full displacement over both faces, none from ``reach`` beyond them; the extent covers all of it.
    shape = (size, size)
    faces = np.maximum(face_mask(reference, shape), face_mask(client, shape))
    outside = cv2.distanceTransform((faces < 0.5).astype(np.uint8), cv2.DIST_L2, 5)
    ramp = np.clip(1.0 - outside / (0.8 * reach), 0.0, 1.0)
    line = np.arange(size, dtype=np.float32)
    to_edge = np.minimum(line, line[::-1])
    edge = np.minimum(to_edge[:, None], to_edge[None, :])  # distance to the crop's border
    half = BORDER * size / 2
    keep = np.clip((edge - half) / half, 0.0, 1.0)
    weight = (ramp * ramp * (3.0 - 2.0 * ramp) * keep).astype(np.float32)
    offset *= weight[..., None]
    extent = np.clip((reach - outside) / (0.2 * reach), 0.0, 1.0) * np.clip(keep * 4.0, 0.0, 1.0)
    return OutlineWarp(offset=np.ascontiguousarray(offset), extent=extent.astype(np.float32))
