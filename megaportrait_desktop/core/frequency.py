"""Frequency separation: the light map, the HF-map and their recombination (DESIGN.md §2).

The light map is a Gaussian low-pass; the HF-map is the signed high-pass ``image − low-pass``, so
``light_map(x, c) + hf_map(x, c) == x`` for the same cut-off. Retouchers see the HF layer on a
mid-grey (:func:`hf_display`); recombination subtracts that grey again: ``light + (HF − 0.5)``.

Everything is float32 and vectorised. A cut-off of more than a few pixels blurs a reduced copy
(area-averaged halvings, then a Gaussian for the rest of the width, then a bilinear enlargement):
the response stays close to a Gaussian and a 4096² map costs a few full-size passes.
:class:`FrequencySeparation` keeps the reduced copies and the output buffers between calls, which is
what lets the maps follow a slider live.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

#: Up to this sigma (pixels) the blur runs at full resolution.
_DIRECT_SIGMA = 3.0


def light_map(image: np.ndarray, cutoff: float) -> np.ndarray:
    """The light map: shading and colour without detail (Gaussian low-pass, sigma ``cutoff`` pixels)."""
    return low_pass(image, cutoff)


def hf_map(image: np.ndarray, cutoff: float) -> np.ndarray:
    """The HF-map: the signed detail finer than ``cutoff`` pixels (``image − low_pass``), centred on 0."""
    image = np.asarray(image, np.float32)
    return cv2.subtract(image, low_pass(image, cutoff))


def recombine(light: np.ndarray, hf: np.ndarray, detail_weight: float = 1.0,
              out: np.ndarray | None = None) -> np.ndarray:
    """``light + detail_weight · HF`` clipped to ``[0, 1]``: the frequency-separation recombination."""
    if detail_weight == 1.0:
        out = cv2.add(light, hf, dst=out)
    else:
        out = cv2.scaleAdd(hf, float(detail_weight), light, dst=out)
    return _clip01(out)


def hf_display(hf: np.ndarray) -> np.ndarray:
    """The HF-map on mid-grey, as retouchers see it (for display only)."""
    return np.clip(hf + np.float32(0.5), 0.0, 1.0)


def low_pass(image: np.ndarray, cutoff: float) -> np.ndarray:
    """Gaussian low-pass of a float32 ``(H, W)`` or ``(H, W, C)`` image, sigma ``cutoff`` pixels."""
    image = np.asarray(image, np.float32)
    return _Pyramid(image).low_pass(cutoff)


class FrequencySeparation:
    """Light map of A, HF-map of B and their recombination, recomputed cheaply as sliders move.

    A and B are reduced once; each :meth:`update` blurs the reduced copy that suits the cut-off
    and enlarges it into buffers reused from the last update (allocating 200 MB per slider move
    would cost more than the arithmetic). The returned arrays are those buffers: copy them to keep.
    """

    def __init__(self, a: np.ndarray, b: np.ndarray) -> None:
        a = np.asarray(a, np.float32)
        b = np.asarray(b, np.float32)
        if a.shape != b.shape:
            raise ValueError(f"A {a.shape} and B {b.shape} must have the same shape")
        self._a, self._b = _Pyramid(a), _Pyramid(b)
        self.light = np.empty_like(a)
        self.hf = np.empty_like(b)
        self.out = np.empty_like(a)

    def update(self, light_cutoff: float, hf_cutoff: float,
               detail_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Recompute ``(light, hf, recombined)`` for the given cut-offs (pixels) and detail gain."""
        self._a.low_pass(light_cutoff, out=self.light)
        self._b.low_pass(hf_cutoff, out=self.hf)
        _in_bands(self._hf_and_recombine, self.out, detail_weight)
        return self.light, self.hf, self.out

    def _hf_and_recombine(self, rows: slice, detail_weight: float) -> None:
        # One band at a time, so hf is still in cache when the recombination reads it back.
        hf = self.hf[rows]
        cv2.subtract(self._b.levels[0][rows], hf, dst=hf)
        recombine(self.light[rows], hf, detail_weight, out=self.out[rows])


class _Pyramid:
    """An image and its area-averaged halvings, made on demand and kept."""

    def __init__(self, image: np.ndarray) -> None:
        self.levels = [image]

    def level(self, k: int) -> np.ndarray:
        while len(self.levels) <= k:
            prev = self.levels[-1]
            h, w = prev.shape[:2]
            if min(h, w) < 4:
                break
            self.levels.append(cv2.resize(prev, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA))
        return self.levels[min(k, len(self.levels) - 1)]

    def low_pass(self, cutoff: float, out: np.ndarray | None = None) -> np.ndarray:
        full = self.levels[0]
        h, w = full.shape[:2]
        if cutoff <= 0:
            if out is None:
                return full.copy()
            np.copyto(out, full)
            return out
        if cutoff <= _DIRECT_SIGMA:
            return _restore_shape(cv2.GaussianBlur(full, (0, 0), cutoff, dst=out,
                                                   borderType=cv2.BORDER_REFLECT_101), full)
        k = max(0, int(math.floor(math.log2(cutoff / 2.0))))
        small = self.level(k)
        factor = w / small.shape[1]
        # The halvings and the bilinear enlargement already blur by about factor / 2.
        rest = math.sqrt(max(cutoff**2 - (factor / 2.0) ** 2, 0.25)) / factor
        blurred = cv2.GaussianBlur(small, (0, 0), rest, borderType=cv2.BORDER_REFLECT_101)
        return _restore_shape(cv2.resize(blurred, (w, h), dst=out, interpolation=cv2.INTER_LINEAR), full)


_BAND_BYTES = 1 << 20
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="frequency")


def _in_bands(work, like: np.ndarray, *args: object) -> None:
    """Run ``work(rows, *args)`` over horizontal bands of about 1 MB of ``like``, on all cores.

    OpenCV's arithmetic releases the GIL, so the bands really run side by side.
    """
    height = like.shape[0]
    step = max(8, _BAND_BYTES // max(1, like[0].nbytes))
    bands = [slice(top, min(height, top + step)) for top in range(0, height, step)]
    for future in [_pool.submit(work, rows, *args) for rows in bands]:
        future.result()


def _restore_shape(result: np.ndarray, like: np.ndarray) -> np.ndarray:
    # OpenCV drops a trailing channel axis of length 1.
    return result.reshape(like.shape)


def _clip01(image: np.ndarray) -> np.ndarray:
    # Two in-place thresholds: a third of np.clip's time on large float32 images.
    cv2.threshold(image, 1.0, 1.0, cv2.THRESH_TRUNC, dst=image)
    cv2.threshold(image, 0.0, 0.0, cv2.THRESH_TOZERO, dst=image)
    return image
