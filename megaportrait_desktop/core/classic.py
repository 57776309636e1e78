"""The classic engine (DESIGN.md §2): every stage on the CPU, with no diffusion weights.

- Identity: the source photo with the closest head pose, aligned to the reference face by a
  similarity transform fitted on stable landmarks (so the client's proportions survive), is B;
  the reference crop is A (each blended by its identity strength).
- Shading: the light map of A recombined with the HF-map of B.
- Paste-back through the feathered mask, at the reference's full resolution.
- Harmonisation: LAB colour matching over the skin, then Poisson blending (``cv2.seamlessClone``).

Stages are plain functions of arrays and request parameters.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import frequency
from .align import FaceCrop, fit_similarity, transform_points, warp_between, warp_to_full
from .engine import Pair, SourcePhoto
from .face import Face
from .landmarks import LEFT_BROW, LEFT_EYE, LIPS, RIGHT_BROW, RIGHT_EYE, STABLE_POINTS
from .masks import face_mask, grow, polygon_mask
from .request import HarmonizeParams, IdentityParams, MaskParams, ShadingParams


def choose_source(sources: list[SourcePhoto], reference: Face) -> int:
    """Index of the source photo whose head pose (yaw, pitch) is closest to the reference's.

    Roll does not count: the alignment removes it.
    """
    ref_yaw, ref_pitch, _ = reference.pose
    distances = [np.hypot(s.face.pose[0] - ref_yaw, s.face.pose[1] - ref_pitch) for s in sources]
    return int(np.argmin(distances))


def identity_pair(crop: FaceCrop, reference_crop_rgb: np.ndarray, sources: list[SourcePhoto],
                  reference: Face, params: IdentityParams) -> Pair:
    """A (reference-like) and B (source-like) in crop space.

    The source is aligned with a similarity transform on the stable points only (eyes, nose,
    mouth): rotation, uniform scale and shift keep every ratio of the client's face.
    """
    index = params.source_index if params.source_index is not None else choose_source(sources, reference)
    if not 0 <= index < len(sources):
        raise IndexError(f"source photo {index + 1} does not exist (the set has {len(sources)})")
    source = sources[index]
    ref_points = crop.to_crop(reference.landmarks)
    to_crop = fit_similarity(source.face.landmarks[list(STABLE_POINTS), :2], ref_points[list(STABLE_POINTS), :2])
    aligned = warp_between(source.rgb, to_crop, crop.size)
    b_landmarks = transform_points(source.face.landmarks, to_crop)
    a = _mix(reference_crop_rgb, aligned, params.a_strength)
    b = _mix(reference_crop_rgb, aligned, params.b_strength)
    return Pair(a=a, b=b, b_landmarks=b_landmarks, source_index=index)


def shade(a: np.ndarray, b: np.ndarray, params: ShadingParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Light map (of A, or mixed toward B's by ``light_weight``), HF-map of B, and their recombination."""
    light = frequency.light_map(a, params.light_cutoff)
    if params.light_weight < 1.0:
        light = _mix(frequency.light_map(b, params.light_cutoff), light, params.light_weight)
    hf = frequency.hf_map(b, params.hf_cutoff)
    return light, hf, frequency.recombine(light, hf, params.detail_weight)


def crop_mask(crop: FaceCrop, reference: Face, b_landmarks: np.ndarray | None, params: MaskParams) -> np.ndarray:
    """The automatic mask in crop space: where both faces are (reference oval ∩ B's oval).

    Pasting only where the reference and the aligned source both have face keeps the source's
    background and hair out of the result.
    """
    shape = (crop.size, crop.size)
    ref_oval = face_mask(crop.to_crop(reference.landmarks), shape)
    both = ref_oval if b_landmarks is None else np.minimum(ref_oval, face_mask(b_landmarks, shape))
    return np.clip(cv2.GaussianBlur(grow(both, params.grow), (0, 0), params.feather), 0, 1) \
        if params.feather > 0 else grow(both, params.grow)


def mask_to_full(mask_crop: np.ndarray, crop: FaceCrop, roi: tuple[int, int, int, int]) -> np.ndarray:
    """The crop-space mask warped onto the full-image ``roi`` (float32 in ``[0, 1]``)."""
    patch, _ = warp_to_full(mask_crop.astype(np.float32), crop, roi=roi, interpolation=cv2.INTER_LINEAR)
    patch = np.clip(patch, 0.0, 1.0)
    patch[patch < 1e-3] = 0.0  # interpolation dust must not count as "inside"
    return patch


def paste_back(reference: np.ndarray, face_crop_rgb: np.ndarray, crop: FaceCrop, mask: np.ndarray,
               roi: tuple[int, int, int, int]) -> np.ndarray:
    """The face (crop space) pasted into the reference's ``roi`` (float, full resolution) through ``mask``."""
    patch, _ = warp_to_full(face_crop_rgb, crop, roi=roi)
    alpha = mask[:, :, None]
    return reference + alpha * (np.clip(patch, 0.0, 1.0) - reference)


def skin_mask(landmarks: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """The face oval less eyes, brows and lips (grown by ``margin``): where skin colour is measured."""
    skin = face_mask(landmarks, shape, grow_px=-margin)
    for part in (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, LIPS):
        skin = np.minimum(skin, 1.0 - grow(polygon_mask(landmarks[list(part), :2], shape), margin))
    return skin > 0.5


def match_colour(pasted: np.ndarray, reference: np.ndarray, skin: np.ndarray, strength: float) -> np.ndarray:
    """Move the pasted face's LAB statistics over the skin toward the reference's.

    Means move on all three channels; spreads only on a and b, so the client's skin texture (L
    contrast: wrinkles, freckles) is kept while tint and saturation follow the reference.
    """
    if strength <= 0 or skin.sum() < 16:
        return pasted
    lab_p = cv2.cvtColor(pasted, cv2.COLOR_RGB2LAB)
    lab_r = cv2.cvtColor(reference, cv2.COLOR_RGB2LAB)
    mu_p, sd_p = lab_p[skin].mean(0), lab_p[skin].std(0) + 1e-3
    mu_r, sd_r = lab_r[skin].mean(0), lab_r[skin].std(0) + 1e-3
    gain = np.array([1.0, *np.clip(sd_r[1:] / sd_p[1:], 0.5, 2.0)], np.float32)
    matched = (lab_p - mu_p) * gain + mu_r
    matched = lab_p + strength * (matched - lab_p)
    return np.clip(cv2.cvtColor(matched.astype(np.float32), cv2.COLOR_LAB2RGB), 0.0, 1.0)


def poisson_blend(pasted: np.ndarray, reference: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Poisson-blend ``pasted`` into ``reference`` over the binary ``region`` (float images).

    ``cv2.seamlessClone`` works on 8 bits; it is used for the smooth correction field only
    (clone − source), which is added to the full-precision image so 16-bit detail survives.
    """
    ys, xs = np.nonzero(region)
    if len(ys) == 0:
        return pasted
    pad = 4
    h, w = region.shape
    x0, y0 = max(0, xs.min() - pad), max(0, ys.min() - pad)
    x1, y1 = min(w, xs.max() + 1 + pad), min(h, ys.max() + 1 + pad)
    src = pasted[y0:y1, x0:x1]
    dst = reference[y0:y1, x0:x1]
    mask = (region[y0:y1, x0:x1] > 0).astype(np.uint8) * 255
    # seamlessClone needs the mask off the patch border.
    mask[:1], mask[-1:], mask[:, :1], mask[:, -1:] = 0, 0, 0, 0
    src8 = _to8(src)
    dst8 = _to8(dst)
    # Same-size source and destination, and the centre of the mask's bounding box as the anchor,
    # so OpenCV places the source exactly where it came from.
    bx, by, bw, bh = cv2.boundingRect(mask)
    centre = (bx + bw // 2, by + bh // 2)
    clone8 = cv2.seamlessClone(src8, dst8, mask, centre, cv2.NORMAL_CLONE)
    correction = cv2.GaussianBlur(clone8.astype(np.float32) - src8.astype(np.float32), (0, 0), 1.0) / 255.0
    out = pasted.copy()
    out[y0:y1, x0:x1] = np.clip(src + correction * (mask[:, :, None] > 0), 0.0, 1.0)
    return out


def harmonize(pasted: np.ndarray, reference: np.ndarray, mask: np.ndarray, skin: np.ndarray,
              params: HarmonizeParams, seam_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Colour match, then Poisson blend over the mask grown by the seam band.

    Returns the harmonised image and the harmonisation region (bool): outside it the caller keeps
    the reference's pixels bit for bit.
    """
    region = grow((mask > 0).astype(np.float32), seam_px) > 0
    if params.strength <= 0:
        return pasted, mask > 0
    matched = pasted.copy()
    inside = mask > 0
    coloured = match_colour(pasted, reference, skin, params.strength)
    weight = mask[:, :, None]
    matched = np.where(inside[:, :, None], pasted + weight * (coloured - pasted), pasted)
    blended = poisson_blend(matched, reference, region)
    out = matched + params.strength * (blended - matched)
    return out, region


def _mix(base: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    if weight <= 0:
        return base.copy()
    if weight >= 1:
        return other.copy()
    return cv2.addWeighted(base, 1.0 - weight, other, weight, 0.0)


def _to8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
