"""Where a face crop shows skin: the face less its features, its hair and what lies behind it.

Two stages need this. The light map must be measured on skin only: eyes, brows, lips, a fringe or a
glasses frame would print their shapes into it, and those are the ghosts of the reference's features
that a recogniser reads. And only the client's skin should be pasted: their fringe pasted onto the
reference's forehead is a strip of hair. The mesh gives the features; colour and texture, measured
against the face's own cheeks, find the hairline and the temples, which no mesh point follows.

Everything works in crop space (a few hundred pixels a side), so it costs milliseconds.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import median_filter

from .landmarks import LEFT_BROW, LEFT_EYE, LEFT_IRIS, LIPS, MOUTH_LEFT, MOUTH_RIGHT, RIGHT_BROW, RIGHT_EYE, RIGHT_IRIS
from .masks import face_mask, grow, polygon_mask

#: The skin is analysed on a copy of the crop at most this many pixels wide (the maps are smooth).
ANALYSIS_SIZE = 256
#: The features (eyes, brows, lips) are grown by this fraction of the crop before they are left out of
#: the skin (8 pixels at 512): the light map must not see their edges either.
FEATURE_MARGIN = 0.016
#: Mahalanobis radius (robust standard deviations from the cheeks' colour) within which a pixel counts
#: as fully skin-coloured.
COLOUR_RADIUS = 2.5
#: A pixel darker than the darkest cheeks (their 5th percentile) by more than this (CIE L*) is no skin.
DARKER_THAN_SKIN = 12.0
#: Local contrast (L* standard deviation over about 2 pixels at 512) above twice the cheeks' 90th
#: percentile is hair, not skin.
TEXTURE_FACTOR = 2.0
#: Scanning up from the brows, the forehead ends at the first row whose skin probability is below this.
HAIRLINE_THRESHOLD = 0.75
#: The hairline is moved down by this fraction of the crop, so stray tips of a fringe stay out.
HAIRLINE_MARGIN = 0.03
#: Non-skin lines up to twice this fraction of the crop wide (a glasses frame, 10 pixels at 512) do not
#: end the forehead.
THIN_LINE = 0.01
#: Width of the band along the face oval's edge where pixels unlike skin are left out, fraction of the crop.
EDGE_BAND = 0.06


def pair_maps(a: np.ndarray, a_landmarks: np.ndarray, b: np.ndarray,
              b_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(a_skin, b_skin, hair_free)`` for a pair in crop space (float32 ``[0, 1]``, the crop's size).

    ``a_skin`` and ``b_skin`` are where each face's light is measured (:func:`light_skin`); ``hair_free`` is 0
    where B's face must not go: above the reference's hairline (its fringe or hat stays whole; the forehead
    only, as along the sides of a face a glasses frame would count as hair and stay, a ghost of the
    reference), and on the client's hair and background (:func:`client_hair_free`). Measured on a copy of
    at most :data:`ANALYSIS_SIZE` pixels, so the cost does not grow with the working size.
    """
    size = a.shape[0]
    small = min(size, ANALYSIS_SIZE)
    scale = small / size

    def reduce(image: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if small == size:
            return image, landmarks
        points = np.asarray(landmarks, np.float64).copy()
        points[:, :2] = (points[:, :2] + 0.5) * scale - 0.5
        return cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), points

    a_small, a_points = reduce(a, a_landmarks)
    b_small, b_points = reduce(b, b_landmarks)
    a_probability, b_probability = skin_probability(a_small, a_points), skin_probability(b_small, b_points)
    a_hairline = hairline(a_probability, a_points)
    maps = (light_skin(a_small, a_points, a_probability).astype(np.float32),
            light_skin(b_small, b_points, b_probability).astype(np.float32),
            below(a_hairline, small) * client_hair_free(b_probability, b_points, a_hairline))
    if small == size:
        return maps
    return tuple(np.clip(cv2.resize(m, (size, size), interpolation=cv2.INTER_LINEAR), 0.0, 1.0) for m in maps)


def feature_free(landmarks: np.ndarray, shape: tuple[int, int], margin: float) -> np.ndarray:
    """Bool: the face oval shrunk by ``margin`` pixels, less the eyes, brows and lips grown by it."""
    features = np.zeros(shape, np.float32)
    for part in (LEFT_EYE, RIGHT_EYE, LEFT_BROW, RIGHT_BROW, LIPS):
        features = np.maximum(features, polygon_mask(landmarks[list(part), :2], shape))
    return (face_mask(landmarks, shape, grow_px=-margin) > 0.5) & (grow(features, margin) < 0.5)


def skin_probability(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """How much each pixel looks like this face's own cheeks, in ``[0, 1]`` (float32, crop space).

    The model is the cheeks' colour (CIE L*a*b*, median and robust spread, between the eyes and the
    mouth, where there is no hair on any head), so it follows each photo's skin and light. A pixel
    is less skin the further its colour is from it, the darker it is than the darkest cheek, and the
    more texture it has (hair is strands, skin is smooth at this scale).
    """
    size = rgb.shape[0]
    shape = rgb.shape[:2]
    lab = cv2.cvtColor(np.clip(rgb, 0.0, 1.0).astype(np.float32), cv2.COLOR_RGB2LAB)
    cheeks = feature_free(landmarks, shape, 0.03 * size)
    eye_line = (landmarks[LEFT_IRIS, 1] + landmarks[RIGHT_IRIS, 1]) / 2
    mouth_line = (landmarks[MOUTH_LEFT, 1] + landmarks[MOUTH_RIGHT, 1]) / 2
    rows = np.arange(size)[:, None]
    cheeks &= (rows > eye_line) & (rows < mouth_line)
    if cheeks.sum() < 50:  # no face to learn from: call everything skin, the mesh alone decides
        return np.ones(shape, np.float32)
    sample = lab[cheeks]
    centre = np.median(sample, axis=0)
    spread = np.median(np.abs(sample - centre), axis=0) * 1.4826 + np.array([2.0, 1.0, 1.0], np.float32)
    distance2 = (((lab - centre) / spread) ** 2).sum(axis=-1)
    r2 = COLOUR_RADIUS**2
    probability = np.exp(-0.5 * np.maximum(distance2 - r2, 0.0) / r2)
    lightness = lab[..., 0]
    darkest = np.percentile(lightness[cheeks], 5)
    probability *= np.clip((lightness - (darkest - DARKER_THAN_SKIN)) / 8.0, 0.0, 1.0)
    texture = _local_std(lightness, 0.004 * size)
    busy = max(float(np.percentile(texture[cheeks], 90)), 0.5)
    probability *= np.clip((TEXTURE_FACTOR * busy - texture) / busy, 0.0, 1.0)
    return cv2.GaussianBlur(probability.astype(np.float32), (0, 0), 0.006 * size)


def hairline(probability: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Per crop column, the row where the forehead ends (hair, a hat), reading upward from the brows.

    A column ends at its first pixel that is not skin. Thin dark lines (a glasses frame, a deep wrinkle)
    are closed over first so they do not end it, and the row is smoothed along the face (a median over
    6 % of the crop) and moved down by :data:`HAIRLINE_MARGIN`, so stray tips of a fringe stay above it.
    """
    size = probability.shape[0]
    brow_top = _brow_top(landmarks, size)
    skin = (probability >= HAIRLINE_THRESHOLD).astype(np.uint8)
    radius = max(1, int(round(THIN_LINE * size)))
    skin = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, cv2.getStructuringElement(
        cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))).astype(bool)
    upward = skin[:brow_top][::-1]
    skin_rows = np.argmin(np.vstack([upward, np.zeros((1, size), bool)]), axis=0).astype(np.float32)
    skin_rows = median_filter(skin_rows, size=max(3, int(0.06 * size)) | 1, mode="nearest")
    return (brow_top - np.maximum(skin_rows - HAIRLINE_MARGIN * size, 0.0)).astype(np.float32)


def below(rows: np.ndarray, size: int) -> np.ndarray:
    """Float32 ``(size, size)``: 1 below the per-column ``rows``, 0 above (a soft edge of 1.5 % of the crop)."""
    grid = np.arange(size, dtype=np.float32)[:, None]
    return np.clip((grid - rows[None, :]) / (0.015 * size) + 0.5, 0.0, 1.0)


def own_skin(probability: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Float32: 0 on this photo's hair and background inside its face oval (above the hairline, and pixels
    unlike skin along the oval's edge below the brows), 1 elsewhere."""
    size = probability.shape[0]
    edge = _edge_band(landmarks, size, _brow_top(landmarks, size))
    return below(hairline(probability, landmarks), size) * (1.0 - edge * (1.0 - probability))


def client_hair_free(probability: np.ndarray, landmarks: np.ndarray, reference_hairline: np.ndarray) -> np.ndarray:
    """Float32: 0 on the client's hair and background that would show in the reference, 1 elsewhere.

    - A fringe is cut at the client's hairline only in the columns where the reference's bare forehead runs
      higher than the client's face oval (there the fringe would end in a hard line on skin); under a
      reference's own hair or hat it stays, and with it the client's look.
    - Along the oval's edge below the brows, pixels unlike the client's skin (hair over the temples, the
      background at the jaw) are left out.
    """
    size = probability.shape[0]
    oval = face_mask(landmarks, (size, size)) > 0.5
    top = np.where(oval.any(axis=0), np.argmax(oval, axis=0), size).astype(np.float32)
    bare = np.clip((top - reference_hairline) / (0.02 * size), 0.0, 1.0)  # the reference's skin reaches higher
    bare = cv2.GaussianBlur(bare[None, :], (0, 0), 0.02 * size)[0]
    cut = 1.0 - bare[None, :] * (1.0 - below(hairline(probability, landmarks), size))
    edge = _edge_band(landmarks, size, _brow_top(landmarks, size))
    return cut * (1.0 - edge * (1.0 - probability))


def light_skin(rgb: np.ndarray, landmarks: np.ndarray, probability: np.ndarray | None = None) -> np.ndarray:
    """Bool: the skin the light is measured on, crop space: no features, no hair or background, and no pixel
    unlike skin (a glasses frame, a beard)."""
    size = rgb.shape[0]
    probability = skin_probability(rgb, landmarks) if probability is None else probability
    return (feature_free(landmarks, rgb.shape[:2], FEATURE_MARGIN * size) & (own_skin(probability, landmarks) > 0.5)
            & (probability > 0.5))


def _brow_top(landmarks: np.ndarray, size: int) -> int:
    top = min(landmarks[list(LEFT_BROW), 1].min(), landmarks[list(RIGHT_BROW), 1].min())
    return int(np.clip(top, 1, size - 1))


def _edge_band(landmarks: np.ndarray, size: int, from_row: int) -> np.ndarray:
    # The outer band of the oval (6 % of the crop wide) below ``from_row``: temples, cheeks, jaw.
    shape = (size, size)
    band = face_mask(landmarks, shape) > face_mask(landmarks, shape, grow_px=-EDGE_BAND * size)
    band &= np.arange(size)[:, None] >= from_row
    return cv2.GaussianBlur(band.astype(np.float32), (0, 0), 0.01 * size)


def _local_std(image: np.ndarray, sigma: float) -> np.ndarray:
    mean = cv2.GaussianBlur(image, (0, 0), sigma)
    mean_sq = cv2.GaussianBlur(image * image, (0, 0), sigma)
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
