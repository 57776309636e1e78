"""Aligned square face crops and the transforms between crop and full image.

A crop is a similarity warp (rotation, uniform scale, translation) of the full image that puts the
stable landmarks on a fixed template, so every stage works on an upright face of the same size and
pastes its result back through the exact inverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .landmarks import STABLE_POINTS

#: Default working size of a face crop (Stable Diffusion 1.5's native resolution).
DEFAULT_CROP_SIZE = 512

# Where the stable points sit in a 1×1 crop: the mean MediaPipe face with the eyes 0.25 apart,
# the eye line at 0.42 of the height. Leaves room for hair, ears and the harmonisation seam.
_EYE_SPAN = 0.25
_EYE_LINE_Y = 0.42


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square crop and the affine maps between it and the full image.

    Attributes
    ----------
    image:
        ``(size, size, 3)`` crop, same dtype as the source.
    matrix:
        ``2×3`` affine, full-image pixel → crop pixel.
    full_shape:
        ``(H, W)`` of the full image.
    """

    image: np.ndarray
    matrix: np.ndarray
    full_shape: tuple[int, int]

    @property
    def size(self) -> int:
        return int(self.image.shape[0])

    @property
    def inverse(self) -> np.ndarray:
        """``2×3`` affine, crop pixel → full-image pixel."""
        return cv2.invertAffineTransform(self.matrix)

    @property
    def scale(self) -> float:
        """Crop pixels per full-image pixel."""
        return float(np.sqrt(abs(np.linalg.det(self.matrix[:, :2]))))

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2+)`` full-image points into the crop (extra columns are scaled, e.g. depth)."""
        return transform_points(points, self.matrix)

    def to_full(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2+)`` crop points back to the full image."""
        return transform_points(points, self.inverse)

    def full_roi(self, margin: int = 2) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)``: the part of the full image the crop covers, clipped to it."""
        s = self.size
        corners = self.to_full(np.array([[0, 0], [s, 0], [0, s], [s, s]], np.float64))
        h, w = self.full_shape
        x0 = max(0, int(np.floor(corners[:, 0].min())) - margin)
        y0 = max(0, int(np.floor(corners[:, 1].min())) - margin)
        x1 = min(w, int(np.ceil(corners[:, 0].max())) + margin)
        y1 = min(h, int(np.ceil(corners[:, 1].max())) + margin)
        return x0, y0, x1, y1


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a ``2×3`` affine to the x, y columns; a third column (depth) is scaled with it."""
    pts = np.asarray(points, np.float64)
    out = pts.copy()
    out[:, :2] = pts[:, :2] @ matrix[:, :2].T + matrix[:, 2]
    if pts.shape[1] > 2:
        out[:, 2:] = pts[:, 2:] * np.sqrt(abs(np.linalg.det(matrix[:, :2])))
    return out


def template(size: int = DEFAULT_CROP_SIZE) -> np.ndarray:
    """The crop positions of :data:`STABLE_POINTS` for a crop of ``size`` pixels."""
    return _TEMPLATE_UNIT * size


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2×3) taking ``src`` points onto ``dst`` points.

    Every point counts (no outlier rejection): with landmarks from one mesh there are no outliers,
    and a deterministic fit keeps round trips exact.
    """
    # Hand-written rather than cv2.estimateAffinePartial2D, whose RANSAC makes the fit random.
    src = np.asarray(src, np.float64)[:, :2]
    dst = np.asarray(dst, np.float64)[:, :2]
    # Umeyama's closed form, restricted to uniform scale and a proper rotation.
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    sign = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ sign @ vt
    scale = np.trace(np.diag(sig) @ sign) / max(s0.var(0).sum(), 1e-12)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - matrix[:, :2] @ mu_s
    return matrix


def crop_matrix(landmarks: np.ndarray, size: int = DEFAULT_CROP_SIZE) -> np.ndarray:
    """The full → crop affine that puts the face's stable points on the template."""
    return fit_similarity(landmarks[list(STABLE_POINTS), :2], template(size=size))


def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int = DEFAULT_CROP_SIZE,
              convert: Callable[[np.ndarray], np.ndarray] | None = None) -> FaceCrop:
    """An upright square crop of the face at ``size`` pixels, with its transform.

    Pixels beyond the image border are mirrored, so a face near the edge still gives a full crop
    (the mask keeps the mirrored part out of the result).

    ``convert`` (e.g. :func:`.imaging.to_float`) is applied to the pixels the warp reads, not to the
    whole image: on a 24-megapixel reference a few megapixels instead of 288 MB of float32 (see
    :func:`warp_into_crop`).
    """
    matrix = crop_matrix(landmarks, size)
    interp = cv2.INTER_AREA if np.sqrt(abs(np.linalg.det(matrix[:, :2]))) < 0.5 else cv2.INTER_CUBIC
    if convert is None:
        crop = cv2.warpAffine(image, matrix, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT_101)
    else:
        crop = warp_into_crop(image, matrix, size, interp, cv2.BORDER_REFLECT_101, convert)
    return FaceCrop(image=crop, matrix=matrix, full_shape=image.shape[:2])


def warp_into_crop(image: np.ndarray, matrix: np.ndarray, size: int, interpolation: int, border: int,
                   convert: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``cv2.warpAffine(convert(image), matrix, (size, size), ...)``, converting only the pixels the warp reads.

    The result is the one the whole converted image gives: the same samples, taken at the same positions
    (the inverse map is moved by the window's origin, a whole number of pixels, which is exact in floating
    point), and the same border handling (where the crop reaches past the image, the window reaches that
    border too). ``border``: ``cv2.BORDER_REFLECT_101`` or ``cv2.BORDER_CONSTANT`` (0).
    """
    window = _source_window(image.shape[:2], matrix, size, mirror=border == cv2.BORDER_REFLECT_101)
    if window is None:  # mirrored more than once: the whole image it is
        return cv2.warpAffine(convert(image), matrix, (size, size), flags=interpolation, borderMode=border)
    x0, y0, x1, y1 = window
    inverse = cv2.invertAffineTransform(matrix)  # what warpAffine computes from ``matrix`` itself
    inverse[:, 2] -= (x0, y0)
    return cv2.warpAffine(convert(image[y0:y1, x0:x1]), inverse, (size, size),
                          flags=interpolation | cv2.WARP_INVERSE_MAP, borderMode=border)


def _source_window(shape: tuple[int, ...], matrix: np.ndarray, size: int, mirror: bool,
                   margin: int = 3) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)``: the part of an image of ``shape`` that a crop warp reads (with ``mirror``, the
    parts mirrored past the border come from too); ``None`` when the warp would mirror more than once.

    ``margin`` covers the interpolation kernel (bicubic reads 2 pixels either side of a sample).
    """
    h, w = shape[:2]
    corners = transform_points(np.array([[0, 0], [size - 1, 0], [0, size - 1], [size - 1, size - 1]], np.float64),
                               cv2.invertAffineTransform(matrix))
    ix0, iy0 = (int(np.floor(v)) - margin for v in corners[:, :2].min(0))
    ix1, iy1 = (int(np.ceil(v)) + margin + 1 for v in corners[:, :2].max(0))
    if mirror:
        if (ix0 < 0 and -ix0 >= w) or (ix1 > w and ix1 - w >= w) or (iy0 < 0 and -iy0 >= h) \
                or (iy1 > h and iy1 - h >= h):
            return None
        # Read what the mirror images of the outside parts come from, too (REFLECT_101: -k → k, n-1+k → n-1-k).
        ix0, ix1 = min(ix0, 2 * w - 1 - ix1), max(ix1, 1 - ix0)
        iy0, iy1 = min(iy0, 2 * h - 1 - iy1), max(iy1, 1 - iy0)
    x0, x1, y0, y1 = max(0, ix0), min(w, ix1), max(0, iy0), min(h, iy1)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def warp_to_full(crop_image: np.ndarray, face_crop: FaceCrop, roi: tuple[int, int, int, int] | None = None,
                 interpolation: int = cv2.INTER_CUBIC) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Warp an image in crop space back to full-image space, over ``roi`` only (default: the crop's).

    Returns the warped patch and its ROI ``(x0, y0, x1, y1)`` in the full image; working on the ROI
    keeps paste-back cheap on a 24-megapixel reference.
    """
    x0, y0, x1, y1 = roi or face_crop.full_roi()
    # The ROI pixel → crop pixel map, sampled with WARP_INVERSE_MAP: the exact inverse of the crop.
    fwd = face_crop.matrix.copy()
    fwd[:, 2] += fwd[:, :2] @ np.array([x0, y0], np.float64)
    patch = cv2.warpAffine(crop_image, fwd, (x1 - x0, y1 - y0), flags=interpolation | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return patch, (x0, y0, x1, y1)


def warp_between(image: np.ndarray, src_to_dst: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` by a 2×3 affine into a ``size``×``size`` frame (mirroring at the borders)."""
    interp = cv2.INTER_AREA if np.sqrt(abs(np.linalg.det(src_to_dst[:, :2]))) < 0.5 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, src_to_dst, (size, size), flags=interp, borderMode=cv2.BORDER_REFLECT_101)


def _unit_template() -> np.ndarray:
    # Mean positions of STABLE_POINTS for a frontal MediaPipe face, eyes level, normalised so the
    # iris centres are _EYE_SPAN apart and centred on x = 0.5, y = _EYE_LINE_Y. Measured (and made
    # symmetric) on the two demo photos; only the relative layout matters (the fit absorbs the rest).
    mean_face = np.array([
        [-0.500, 0.000],  # left iris
        [0.500, 0.000],   # right iris
        [-0.710, 0.010],  # left eye outer corner (33)
        [-0.275, 0.050],  # left eye inner corner (133)
        [0.275, 0.050],   # right eye inner corner (362)
        [0.710, 0.010],   # right eye outer corner (263)
        [0.000, 0.680],   # nose tip (1)
        [0.000, 0.745],   # nose base (2)
        [-0.305, 0.675],  # left nostril (98)
        [0.305, 0.675],   # right nostril (327)
        [-0.450, 0.970],  # left mouth corner (61)
        [0.450, 0.970],   # right mouth corner (291)
        [0.000, 0.940],   # upper lip (0)
        [0.000, 1.225],   # lower lip (17)
    ])
    return mean_face * _EYE_SPAN + (0.5, _EYE_LINE_Y)


_TEMPLATE_UNIT = _unit_template()
