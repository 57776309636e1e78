"""Quality checks for identity photos: each problem comes with a reason a photographer can act on."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .align import crop_face
from .face import Face
from .masks import face_mask


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the identity-photo checks (all documented defaults, all adjustable)."""

    #: Shorter side of the face box below which the face is too small, in pixels.
    min_face_px: float = 128.0
    #: Variance of the Laplacian over the face at 256 px below which the photo counts as blurry.
    min_sharpness: float = 200.0
    #: Head turn (yaw, degrees) above which the photo counts as a strong profile.
    max_yaw: float = 35.0


@dataclass(frozen=True)
class QualityIssue:
    code: str  # no_face | several_faces | face_too_small | blurry | strong_profile
    message: str


@dataclass(frozen=True)
class QualityReport:
    """What the checks found; ``ok`` when there is nothing to report."""

    face_count: int
    issues: tuple[QualityIssue, ...] = ()
    sharpness: float | None = None
    yaw: float | None = None
    face_px: float | None = None
    measures: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def usable(self) -> bool:
        """A face is there to work with (other issues only lower the result's quality)."""
        return self.face_count > 0

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(issue.code for issue in self.issues)

    def to_json(self) -> dict:
        return {"ok": self.ok, "face_count": self.face_count,
                "issues": [{"code": i.code, "message": i.message} for i in self.issues],
                "sharpness": None if self.sharpness is None else round(self.sharpness, 2),
                "yaw": None if self.yaw is None else round(self.yaw, 2),
                "face_px": None if self.face_px is None else round(self.face_px, 1)}


def sharpness(rgb: np.ndarray, face: Face) -> float:
    """Variance of the Laplacian inside the face, measured on a 256-pixel aligned crop.

    Measuring at a fixed face size makes the number comparable between a phone snap and a
    50-megapixel frame.
    """
    crop = crop_face(rgb, face.landmarks, 256)
    grey = cv2.cvtColor(crop.image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    lap = cv2.Laplacian(grey, cv2.CV_32F, ksize=3)
    inside = face_mask(crop.to_crop(face.landmarks), (256, 256), grow_px=-12) > 0.5
    return float(lap[inside].var()) if inside.any() else 0.0


def check_identity_photo(rgb: np.ndarray, faces: list[Face],
                         thresholds: QualityThresholds = QualityThresholds()) -> QualityReport:
    """Check one identity photo given its detected faces (largest first)."""
    if not faces:
        return QualityReport(0, (QualityIssue(
            "no_face", "No face found: use a photo where the face is visible and well lit."),))
    issues = []
    if len(faces) > 1:
        issues.append(QualityIssue(
            "several_faces", f"{len(faces)} faces found: the largest is used; crop the photo to one person "
                             "to be sure."))
    face = faces[0]
    if face.size < thresholds.min_face_px:
        issues.append(QualityIssue(
            "face_too_small", f"The face is {face.size:.0f} px; use a photo where it is at least "
                              f"{thresholds.min_face_px:.0f} px, or crop less."))
    sharp = sharpness(rgb, face)
    if sharp < thresholds.min_sharpness:
        issues.append(QualityIssue(
            "blurry", f"The face looks blurry (sharpness {sharp:.0f}, below {thresholds.min_sharpness:.0f}); "
                      "use a sharper photo."))
    yaw = face.pose[0]
    if abs(yaw) > thresholds.max_yaw:
        issues.append(QualityIssue(
            "strong_profile", f"The head is turned {abs(yaw):.0f}°; use photos within "
                              f"{thresholds.max_yaw:.0f}° of frontal."))
    return QualityReport(len(faces), tuple(issues), sharp, yaw, face.size)
