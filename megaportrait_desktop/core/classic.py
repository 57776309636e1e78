"""The classic engine (DESIGN.md §2): every stage on the CPU, with no diffusion weights.

- Identity: the source photo with the closest head pose and expression, aligned to the reference face by
  a similarity transform fitted on stable landmarks (so the client's proportions survive), is B; the
  reference crop, its face outline moved onto the client's (:mod:`.reshape`), is A (each blended by its
  identity strength).
- Shading: the client's face relit with the reference's light (:mod:`.relight`): light maps measured on
  skin only (:mod:`.skin`), ``B · light(A) / light(B)``; around the face, A.
- Paste-back through the feathered mask (the client's face, less hair, and all the warp moved), at the
  reference's full resolution.
- Harmonisation: Poisson blending (``cv2.seamlessClone``) over the face and a seam band.

Stages are plain functions of arrays and request parameters.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import frequency
from .align import FaceCrop, fit_similarity, transform_points, warp_between, warp_to_full
from .engine import FaceMaps, Pair, SourcePhoto
from .face import Face
from .landmarks import STABLE_POINTS, expression_distance
from .masks import face_mask, feather, grow
from .relight import masked_low_pass, relight
from .request import HarmonizeParams, IdentityParams, MaskParams, ShadingParams
from .reshape import outline_warp
from .skin import pair_maps

#: Degrees of head pose that weigh as much as an expression difference of 0.01 (mouth openness or smile,
#: see :func:`.landmarks.expression_distance`): a smile against a neutral mouth (about 0.12) counts like
#: a head turned 12° further.
DEGREES_PER_EXPRESSION = 100.0


def choose_source(sources: list[SourcePhoto], reference: Face) -> int:
    """Index of the source photo closest to the reference in head pose (yaw, pitch) and expression.

    Roll does not count: the alignment removes it. The expression (mouth open or closed, smiling or
    not) counts as much as the pose: the client's mouth is pasted whole, so a photo with the
    reference's expression keeps the reference's expression.
    """
    ref_yaw, ref_pitch, _ = reference.pose
    costs = [np.hypot(s.face.pose[0] - ref_yaw, s.face.pose[1] - ref_pitch)
             + DEGREES_PER_EXPRESSION * expression_distance(s.face.landmarks, reference.landmarks) for s in sources]
    return int(np.argmin(costs))


def identity_pair(crop: FaceCrop, reference_crop_rgb: np.ndarray, sources: list[SourcePhoto],
                  reference: Face, params: IdentityParams) -> Pair:
    """A (reference-like) and B (source-like) in crop space, and the maps the shading needs.

    The source is aligned with a similarity transform on the stable points only (eyes, nose,
    mouth): rotation, uniform scale and shift keep every ratio of the client's face. The reference
    crop's face outline is then moved onto the client's (``face_shape`` of the way), so the client's
    jaw and cheeks replace the reference's instead of sitting inside them.
    """
    index = params.source_index if params.source_index is not None else choose_source(sources, reference)
    if not 0 <= index < len(sources):
        raise IndexError(f"source photo {index + 1} does not exist (the set has {len(sources)})")
    source = sources[index]
    ref_points = crop.to_crop(reference.landmarks)
    to_crop = fit_similarity(source.face.landmarks[list(STABLE_POINTS), :2], ref_points[list(STABLE_POINTS), :2])
    aligned = warp_between(source.rgb, to_crop, crop.size)
    b_landmarks = transform_points(source.face.landmarks, to_crop)
    reference_rgb = np.clip(reference_crop_rgb, 0.0, 1.0).astype(np.float32)
    warp = outline_warp(ref_points, b_landmarks, crop.size, params.face_shape)
    a_landmarks = ref_points if warp is None else warp.forward(ref_points)
    if warp is not None:
        reference_rgb = warp.apply(reference_rgb)
    a = _mix(reference_rgb, aligned, params.a_strength)
    b = _mix(reference_rgb, aligned, params.b_strength)
    a_skin, b_skin, hair = pair_maps(a, a_landmarks, b, b_landmarks)
    maps = FaceMaps(a_landmarks=a_landmarks, a_skin=a_skin, b_skin=b_skin, hair_free=hair,
                    extent=None if warp is None else warp.extent)
    return Pair(a=a, b=b, b_landmarks=b_landmarks, source_index=index, maps=maps)


def relight_face(pair: Pair, shading: ShadingParams, mask: MaskParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The classic Shading stage: light map, HF-map and the shaded crop (see :mod:`.relight`).

    The light map is A's, measured on its skin (mixed toward B's by ``1 − light_weight``) at
    ``light_cutoff``; B's detail is B over its own light map at ``hf_cutoff``. Inside the client's face
    (:func:`face_region`) the shaded crop is B relit; outside, A.
    """
    maps = pair.maps
    if maps is None or pair.b_landmarks is None:
        raise ValueError("the classic shading needs the face maps of the classic identity pair")
    light = masked_low_pass(pair.a, maps.a_skin, shading.light_cutoff)
    if shading.light_weight < 1.0:
        light = _mix(masked_low_pass(pair.b, maps.b_skin, shading.light_cutoff), light, shading.light_weight)
    b_light = masked_low_pass(pair.b, maps.b_skin, shading.hf_cutoff)
    hf, face = relight(pair.b, b_light, light, shading.detail_weight)
    region = face_region(pair, mask)[..., None]
    return light, hf, (region * face + (1.0 - region) * pair.a).astype(np.float32)


def face_region(pair: Pair, params: MaskParams) -> np.ndarray:
    """Where B's face replaces A (crop space, float32 ``[0, 1]``): B's face oval grown by ``params.grow``,
    less the hair of either face, feathered by ``params.feather``."""
    assert pair.maps is not None and pair.b_landmarks is not None
    shape = pair.b.shape[:2]
    region = grow(face_mask(pair.b_landmarks, shape), params.grow) * pair.maps.hair_free
    return feather(region, params.feather)


def relight_mask(pair: Pair, params: MaskParams) -> np.ndarray:
    """The classic engine's automatic paste mask (crop space): the client's face, and all the warp moved."""
    region = face_region(pair, params)
    extent = pair.maps.extent if pair.maps is not None else None
    return region if extent is None else np.maximum(region, extent)


def shade(a: np.ndarray, b: np.ndarray, params: ShadingParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequency separation (the diffusion engine's control signals): light map of A (or mixed toward B's by
    ``light_weight``), HF-map of B, and their recombination."""
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


def harmonize(pasted: np.ndarray, reference: np.ndarray, mask: np.ndarray,
              params: HarmonizeParams, seam_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Poisson blend over the mask grown by the seam band.

    No colour matching: the relit face already carries the reference's light and colour, and a global
    colour shift would tint the hair and background the outline warp pasted with it. Returns the
    harmonised image and the harmonisation region (bool): outside it the caller keeps the reference's
    pixels bit for bit.
    """
    region = grow((mask > 0).astype(np.float32), seam_px) > 0
    if params.strength <= 0:
        return pasted, mask > 0
    blended = poisson_blend(pasted, reference, region)
    return pasted + params.strength * (blended - pasted), region


def _mix(base: np.ndarray, other: np.ndarray, weight: float) -> np.ndarray:
    if weight <= 0:
        return base.copy()
    if weight >= 1:
        return other.copy()
    return cv2.addWeighted(base, 1.0 - weight, other, weight, 0.0)


def _to8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
