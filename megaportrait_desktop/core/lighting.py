"""Did an output keep the reference's light? Two measures for ``evaluate``.

Both are taken in the reference face's aligned crop (:data:`SIZE` pixels), over the skin that the
reference and the output both show: each face's oval less its eyes, brows, lips, hair and anything
unlike skin (:func:`.skin.light_skin`, the output's face found in the output itself), so a changed
face shape, a fringe or glasses do not count as light.

- **light** (correlation, 1 = the same pattern of light and shade): the Pearson correlation of the two
  light maps, CIE L* low-passed over that skin at :data:`LIGHT_SCALE` × the interocular distance (a
  quarter of the crop): the scale of the light's direction and fall-off, not of the features.
- **colour** (ΔE, 0 = the same colour): the distance between the mean a*, b* (CIE 1976) of the two over that
  skin: the colour of the light on the skin.
"""

from __future__ import annotations

import cv2
import numpy as np

from .align import crop_face
from .face import Face
from .relight import masked_low_pass
from .skin import light_skin

SIZE = 256
#: Sigma of the light map, times the interocular distance (0.25 × SIZE in the crop).
LIGHT_SCALE = 0.35
#: Fewer shared skin pixels than this (out of SIZE²) and the light is not measured.
MIN_PIXELS = 500


def light_agreement(output_rgb: np.ndarray, reference_rgb: np.ndarray, reference_face: Face,
                    output_face: Face) -> tuple[float, float] | None:
    """``(light correlation, colour ΔE)`` of the output's face against the reference's (8-bit RGB, same
    geometry); ``None`` when they share too little skin to say."""
    crops = [crop_face(np.asarray(image[:, :, :3], np.float32) / 255.0, reference_face.landmarks, SIZE)
             for image in (reference_rgb, output_rgb)]
    reference_crop, output_crop = crops
    skin = light_skin(np.clip(reference_crop.image, 0, 1), reference_crop.to_crop(reference_face.landmarks))
    skin &= light_skin(np.clip(output_crop.image, 0, 1), reference_crop.to_crop(output_face.landmarks))
    if skin.sum() < MIN_PIXELS:
        return None
    labs = [cv2.cvtColor(np.clip(c.image, 0, 1).astype(np.float32), cv2.COLOR_RGB2LAB) for c in crops]
    sigma = LIGHT_SCALE * 0.25 * SIZE
    maps = [masked_low_pass(lab[..., :1], skin.astype(np.float32), sigma)[..., 0][skin] for lab in labs]
    if min(float(m.std()) for m in maps) < 1e-6:
        correlation = 1.0 if np.allclose(maps[0], maps[1]) else 0.0
    else:
        correlation = float(np.corrcoef(maps[0], maps[1])[0, 1])
    colour = float(np.linalg.norm(labs[0][skin][:, 1:].mean(0) - labs[1][skin][:, 1:].mean(0)))
    return correlation, colour
