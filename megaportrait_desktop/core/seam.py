"""How visible an edit's edge is, and whether it stayed inside its region: two measures for ``evaluate``."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def changed_region(output: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Bool ``(H, W)``: the pixels the edit changed, holes filled (a pixel the edit happened to leave
    as it was, inside the face, is not an edge)."""
    changed = np.any(_rgb(output) != _rgb(reference), axis=2)
    return ndimage.binary_fill_holes(changed)


def seam_step(output: np.ndarray, reference: np.ndarray) -> float | None:
    """The excess intensity step across the edge of the changed region, in 8-bit levels.

    For every pair of 4-neighbours with one pixel inside the changed region and one outside, the step is
    the absolute difference between the two (mean of R, G and B, 8-bit levels). The result is the mean
    step in the output less the mean step of the same pairs in the reference: 0 is an edge no stronger
    than the photo's own texture there; a hard-edged paste of another face measures tens of levels.
    ``None`` when nothing changed.
    """
    out, ref = _rgb(output).astype(np.float32), _rgb(reference).astype(np.float32)
    inside = changed_region(output, reference)
    if not inside.any():
        return None
    steps_out, steps_ref = [], []
    for axis in (0, 1):
        for shift in (1, -1):
            neighbour_inside = np.roll(inside, shift, axis=axis)
            edge = inside & ~neighbour_inside
            _clear_wrapped(edge, axis, shift)
            if not edge.any():
                continue
            out_n, ref_n = np.roll(out, shift, axis=axis), np.roll(ref, shift, axis=axis)
            steps_out.append(np.abs(out[edge] - out_n[edge]).mean(axis=1))
            steps_ref.append(np.abs(ref[edge] - ref_n[edge]).mean(axis=1))
    if not steps_out:
        return 0.0  # the whole frame changed: there is no edge
    return float(np.concatenate(steps_out).mean() - np.concatenate(steps_ref).mean())


def changed_outside(output: np.ndarray, reference: np.ndarray, region: np.ndarray | None) -> int:
    """How many pixels differ from the reference outside ``region`` (every pixel, when there is none)."""
    changed = np.any(_raw(output) != _raw(reference), axis=2)
    if region is not None:
        changed &= ~region
    return int(changed.sum())


def _clear_wrapped(edge: np.ndarray, axis: int, shift: int) -> None:
    # np.roll wraps around: the first (or last) row/column compares with the opposite border.
    index = [slice(None), slice(None)]
    index[axis] = slice(0, 1) if shift == 1 else slice(-1, None)
    edge[tuple(index)] = False


def _rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[:, :, None].repeat(3, axis=2)
    image = image[:, :, :3]
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0).round().astype(np.uint8)
    return image


def _raw(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return image[:, :, None] if image.ndim == 2 else image
