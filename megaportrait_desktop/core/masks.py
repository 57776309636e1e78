"""Face masks: the default mask from the face-oval landmarks, grow/shrink and feather.

Masks are float32 in ``[0, 1]`` (1 = take the new face). Brush editing also lives in core, on
these arrays, so it is tested without widgets.
"""

from __future__ import annotations

import cv2
import numpy as np

from .landmarks import FACE_OVAL


def polygon_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A binary (0/1 float32) mask of the filled polygon through ``points`` (x, y in pixels)."""
    mask = np.zeros(shape[:2], np.uint8)
    # Sub-pixel polygon: 4 fractional bits keep the outline where the landmarks are.
    pts = np.round(np.asarray(points, np.float64)[:, :2] * 16).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_AA, shift=4)
    return (mask > 0).astype(np.float32)


def grow(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Dilate (``pixels`` > 0) or erode (``pixels`` < 0) a mask by a disc of that radius.

    Outside the array counts as empty (an erosion eats in from the border).
    """
    radius = int(round(abs(pixels)))
    if radius == 0:
        return mask.copy()
    if radius > 2 and mask.ndim == 2 and ((mask == 0) | (mask == 1)).all():
        return _grow_binary(mask, radius if pixels > 0 else -radius)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    op = cv2.dilate if pixels > 0 else cv2.erode
    return op(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def _grow_binary(mask: np.ndarray, radius: int) -> np.ndarray:
    # A 0/1 mask grows by the exact Euclidean distance to it: linear time, where a disc-shaped structuring
    # element costs its area per pixel (seconds for a wide seam on a camera frame).
    inside = np.pad(mask > 0, 1)  # the frame outside counts as empty
    if radius > 0:
        distance = cv2.distanceTransform((~inside).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out = distance <= radius
    else:
        distance = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        out = distance > -radius
    return out[1:-1, 1:-1].astype(mask.dtype)


def feather(mask: np.ndarray, pixels: float) -> np.ndarray:
    """Soften a mask's edge with a Gaussian of ``pixels`` standard deviation."""
    if pixels <= 0:
        return mask.astype(np.float32, copy=True)
    return np.clip(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), pixels), 0.0, 1.0)


def face_mask(landmarks: np.ndarray, shape: tuple[int, int], grow_px: float = 0.0,
              feather_px: float = 0.0) -> np.ndarray:
    """The default face mask: the face-oval polygon, grown or shrunk, then feathered.

    Parameters
    ----------
    landmarks:
        ``(478, 2+)`` mesh points in the mask's pixel frame.
    shape:
        ``(H, W)`` of the mask.
    grow_px:
        Positive grows the oval outward, negative shrinks it (pixels).
    feather_px:
        Edge softness (Gaussian sigma, pixels).
    """
    oval = polygon_mask(landmarks[list(FACE_OVAL), :2], shape)
    return feather(grow(oval, grow_px), feather_px)


def seam_band(mask: np.ndarray, width: float) -> np.ndarray:
    """The band of ``width`` pixels either side of the mask's edge (binary float32)."""
    hard = (mask > 0.5).astype(np.float32)
    return np.clip(grow(hard, width) - grow(hard, -width), 0.0, 1.0)
