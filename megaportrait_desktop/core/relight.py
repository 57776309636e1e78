"""Relighting the client's face with the reference's light: the classic engine's Shading stage.

The frequency-separation recombination ``light(A) + HF(B)`` keeps the reference's low frequencies, and at
any cut-off that keeps its lighting they still hold its features (dark eye sockets, the mouth, brows, the
jaw's shading), so a recogniser sees a mix of the two people. Here the light is *measured* instead:

- a **light map** is a low-pass of the skin only (normalised convolution over the skin, so eyes, brows,
  lips and hair leave no trace, and values under them are filled in from the skin around);
- the client's face is divided by its own light map and multiplied by the reference's (ratio-image
  relighting): ``B · light(A) / light(B)``, per colour channel, so the reference's light direction and
  colour arrive and every feature, pore and proportion of the client's face stays.

Written as a recombination, ``light + detail_weight · HF`` with ``HF = light · (B / light(B) − 1)``, so the
HF-map is B's detail as it lands under the new light and the sliders mean what they meant.
"""

from __future__ import annotations

import cv2
import numpy as np

from .frequency import low_pass

#: Where less than this share of a Gaussian's weight falls on skin, the light map fades to a three times
#: wider estimate (filling holes larger than the cut-off, and the crop's corners).
_COVERAGE = 0.2
#: B's detail (B over its light map) is kept below this (a specular highlight on a dark face).
MAX_RATIO = 4.0
#: Rec. 601 luma weights: the luminance part of B's detail.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)
#: Sigma (fraction of the crop; 1.5 pixels at 512) over which the colour part of B's detail is smoothed.
CHROMA_SMOOTHING = 0.003


def masked_low_pass(image: np.ndarray, weight: np.ndarray, cutoff: float) -> np.ndarray:
    """Gaussian low-pass of ``image`` (H, W, C) over the pixels where ``weight`` (H, W, ``[0, 1]``) is set.

    Normalised convolution: ``blur(image · w) / blur(w)``, so only the weighted pixels count and the
    result is defined (filled in) everywhere the Gaussian reaches them. Where it barely does, a three
    times wider estimate takes over; beyond that, the weighted pixels' mean. The arithmetic runs on a
    copy reduced by up to a quarter of the cut-off (the result has no finer detail) and is enlarged once.
    """
    image = np.asarray(image, np.float32)
    w = np.asarray(weight, np.float32)
    if not w.any():
        return low_pass(image, cutoff)
    weighted = image * w[..., None]
    height, width = image.shape[:2]
    factor = 2 ** max(0, int(np.floor(np.log2(cutoff / 4.0)))) if cutoff > 0 else 1
    if factor > 1:
        small = (max(1, round(width / factor)), max(1, round(height / factor)))
        # (OpenCV drops a channel axis of length 1: put it back.)
        weighted = cv2.resize(weighted, small, interpolation=cv2.INTER_AREA).reshape(small[1], small[0], -1)
        w = cv2.resize(w, small, interpolation=cv2.INTER_AREA)
    mean = weighted.reshape(-1, image.shape[2]).sum(0) / max(float(w.sum()), 1e-6)
    if cutoff <= 0:
        return np.where(w[..., None] > 0, image, mean).astype(np.float32)
    sigma = cutoff / factor
    near, near_w = low_pass(weighted, sigma), low_pass(w, sigma)[..., None]
    wide, wide_w = low_pass(weighted, 3 * sigma), low_pass(w, 3 * sigma)[..., None]
    reach = np.clip(wide_w / 0.01, 0.0, 1.0)
    wide_estimate = reach * (wide / np.maximum(wide_w, 1e-4)) + (1.0 - reach) * mean
    trust = np.clip(near_w / _COVERAGE, 0.0, 1.0)
    result = (trust * (near / np.maximum(near_w, 1e-4)) + (1.0 - trust) * wide_estimate).astype(np.float32)
    if factor > 1:
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
    return result.reshape(image.shape)


def relight(b: np.ndarray, b_light: np.ndarray, light: np.ndarray,
            detail_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``(hf, face)``: B's detail under ``light``, and the relit face ``light + detail_weight · hf``.

    B's detail is relative: ``B / b_light`` (``b_light`` is B's own light map), so with a detail weight of 1
    the face is the ratio image ``B · light / b_light`` and a shadow darkens the new light by the share it
    darkened the old one. Its colour part (each channel's ratio over the luminance ratio) is smoothed over
    a pixel or two: where the client's skin is much darker in a channel than the reference's (an orange
    skin under a pale light) that channel's grain would otherwise be multiplied up into coloured speckle.
    """
    b = np.asarray(b, np.float32)
    ratio = np.clip(b / np.maximum(b_light, 1e-3), 0.0, MAX_RATIO)
    luminance = np.clip((b @ LUMA) / np.maximum(b_light @ LUMA, 1e-3), 0.0, MAX_RATIO)[..., None]
    colour = ratio / np.maximum(luminance, 1e-3)
    colour = cv2.GaussianBlur(colour, (0, 0), max(CHROMA_SMOOTHING * b.shape[0], 0.5))
    hf = (light * (luminance * colour - 1.0)).astype(np.float32)
    face = np.clip(light + np.float32(detail_weight) * hf, 0.0, 1.0)
    return hf, face
