"""Named points of MediaPipe's 478-point face mesh, and the geometry computed from them.

Index sets follow the canonical MediaPipe face mesh topology (468 mesh points + 10 iris points
with ``refine_landmarks``). Image-left/right is used throughout: "left" is the smaller x.
"""

from __future__ import annotations

import numpy as np

#: Closed face outline, clockwise from the forehead top.
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)

LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
RIGHT_EYE = (362, 382, 381, 380, 374, 373, 390, 249, 263, 466, 388, 387, 386, 385, 384, 398)
LEFT_BROW = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46)
RIGHT_BROW = (300, 293, 334, 296, 336, 285, 295, 282, 283, 276)
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)

LEFT_EYE_CORNERS = (33, 133)    # image-left eye: outer, inner
RIGHT_EYE_CORNERS = (362, 263)  # image-right eye: inner, outer
LEFT_IRIS = 468
RIGHT_IRIS = 473
NOSE_TIP = 1
NOSE_BASE = 2
NOSTRILS = (98, 327)
MOUTH_LEFT = 61
MOUTH_RIGHT = 291
UPPER_LIP = 0
LOWER_LIP = 17
UPPER_INNER_LIP = 13
LOWER_INNER_LIP = 14
CHIN = 152
FOREHEAD = 10
CHEEK_LEFT = 234
CHEEK_RIGHT = 454

#: Points that move little with expression and outline: the alignment fits on these.
STABLE_POINTS = (LEFT_IRIS, RIGHT_IRIS, *LEFT_EYE_CORNERS, *RIGHT_EYE_CORNERS, NOSE_TIP, NOSE_BASE,
                 *NOSTRILS, MOUTH_LEFT, MOUTH_RIGHT, UPPER_LIP, LOWER_LIP)

#: Points whose scale-free distances describe the inner face (eyes, nose, mouth, chin).
INNER_GEOMETRY_POINTS = (LEFT_IRIS, RIGHT_IRIS, NOSE_TIP, NOSE_BASE, *NOSTRILS, MOUTH_LEFT, MOUTH_RIGHT,
                         UPPER_LIP, LOWER_LIP, CHIN)


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """Left eye, right eye, nose tip, left and right mouth corner as ``(5, 2)`` float32 (ArcFace order)."""
    pts = landmarks[:, :2]
    return np.stack([pts[LEFT_IRIS], pts[RIGHT_IRIS], pts[NOSE_TIP], pts[MOUTH_LEFT], pts[MOUTH_RIGHT]]
                    ).astype(np.float32)


def interocular_distance(landmarks: np.ndarray) -> float:
    """Distance between the two iris centres, in the landmarks' units."""
    return float(np.linalg.norm(landmarks[LEFT_IRIS, :2] - landmarks[RIGHT_IRIS, :2]))


def inner_geometry(landmarks: np.ndarray) -> np.ndarray:
    """Pairwise distances between inner-face points divided by the interocular distance.

    Scale-, rotation- and translation-free, so two photos of one person give similar vectors and
    a face transplant that keeps the source's proportions moves this vector toward the source's.
    """
    pts = landmarks[list(INNER_GEOMETRY_POINTS), :2].astype(np.float64)
    diff = pts[:, None, :] - pts[None, :, :]
    dist = np.linalg.norm(diff, axis=-1)
    upper = dist[np.triu_indices(len(pts), k=1)]
    return upper / max(interocular_distance(landmarks), 1e-6)


def geometry_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two :func:`inner_geometry` vectors (0 = same proportions)."""
    return float(np.mean(np.abs(inner_geometry(a) - inner_geometry(b))))


def mouth_openness(landmarks: np.ndarray) -> float:
    """The gap between the inner lips over the interocular distance: 0 closed, ≈ 0.15 a smile with teeth,
    ≈ 0.35 speaking (measured on public-domain portraits)."""
    gap = float(np.linalg.norm(landmarks[UPPER_INNER_LIP, :2] - landmarks[LOWER_INNER_LIP, :2]))
    return gap / max(interocular_distance(landmarks), 1e-6)


def smile(landmarks: np.ndarray) -> float:
    """How far the mouth corners sit above the middle of the lips, over the interocular distance: about
    0.0–0.07 for a neutral mouth, 0.12–0.24 for a smile (measured on public-domain portraits)."""
    p = landmarks[:, :2].astype(np.float64)
    eyes = p[RIGHT_IRIS] - p[LEFT_IRIS]
    down = np.array([-eyes[1], eyes[0]]) / max(float(np.linalg.norm(eyes)), 1e-6)  # measured in the face's frame
    corners = (p[MOUTH_LEFT] + p[MOUTH_RIGHT]) / 2
    middle = (p[UPPER_LIP] + p[LOWER_LIP]) / 2
    return float(np.dot(middle - corners, down)) / max(interocular_distance(landmarks), 1e-6)


def expression_distance(a: np.ndarray, b: np.ndarray) -> float:
    """How different two faces' expressions are: the larger of the differences in mouth openness
    (:func:`mouth_openness`) and in smile (:func:`smile`). 0.1 separates "alike" from "not alike"."""
    return max(abs(mouth_openness(a) - mouth_openness(b)), abs(smile(a) - smile(b)))


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Approximate (yaw, pitch, roll) in degrees from the mesh's 3-D points.

    MediaPipe's z shares x's scale, so the cheek-to-cheek vector's depth gives yaw and the
    forehead-to-chin vector's depth gives pitch; the eye line gives roll. Good to a few degrees,
    which is all that choosing a matching source photo and flagging profiles need.
    """
    p = landmarks.astype(np.float64)
    across = p[CHEEK_RIGHT] - p[CHEEK_LEFT]
    down = p[CHIN] - p[FOREHEAD]
    eyes = p[RIGHT_IRIS] - p[LEFT_IRIS]
    yaw = np.degrees(np.arctan2(across[2], np.hypot(across[0], across[1])))
    pitch = np.degrees(np.arctan2(down[2], np.hypot(down[0], down[1])))
    roll = np.degrees(np.arctan2(eyes[1], eyes[0]))
    return float(yaw), float(pitch), float(roll)
