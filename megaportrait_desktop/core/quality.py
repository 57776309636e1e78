"""Quality checks for identity photos: each problem comes with a reason a photographer can act on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from .align import crop_face
from .face import Face
from .landmarks import expression_distance, mouth_openness, smile
from .masks import face_mask

#: A smile (:func:`.landmarks.smile`) at or above this reads as smiling in the messages.
SMILING = 0.1


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of the identity-photo checks (all documented defaults, all adjustable)."""

    #: Shorter side of the face box below which the face is too small, in pixels.
    min_face_px: float = 128.0
    #: Variance of the Laplacian over the face at 256 px below which the photo counts as blurry.
    min_sharpness: float = 200.0
    #: Head turn (yaw, degrees) above which the photo counts as a strong profile.
    max_yaw: float = 35.0
    #: dlib distance below which two photos of a set count as near-duplicates (one photo twice). The same
    #: photo mirrored, re-encoded, resized, cropped, greyed or rotated 10° measured 0.03–0.20; two different
    #: photos of one person 0.34–0.55 (public-domain portraits, see README).
    near_duplicate_distance: float = 0.25
    #: Expression difference (:func:`.landmarks.expression_distance`: the larger of the differences in mouth
    #: openness, the inner-lip gap over the interocular distance, closed ≈ 0, a smile with teeth ≈ 0.15,
    #: speaking ≈ 0.35, and in smile, the mouth corners' lift, neutral ≈ 0.0–0.07, smiling ≈ 0.12–0.24) by which
    #: every photo of the set may differ from the reference before it is flagged.
    max_mouth_difference: float = 0.1


@dataclass(frozen=True)
class QualityIssue:
    #: One photo: no_face | several_faces | face_too_small | blurry | strong_profile.
    #: The set: single_photo | near_duplicate | several_faces | expression_mismatch.
    code: str
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


# ------------------------------------------------------------------------------------------ the set


@dataclass(frozen=True, eq=False)
class SetPhoto:
    """What the set checks need of one identity photo."""

    name: str
    landmarks: np.ndarray | None = None
    #: Its identity embedding (from the default backend), when there is one.
    embedding: np.ndarray | None = None
    face_count: int = 1


def check_identity_set(photos: Sequence[SetPhoto], reference_landmarks: np.ndarray | None = None,
                       thresholds: QualityThresholds = QualityThresholds(),
                       metric: str = "euclidean") -> tuple[QualityIssue, ...]:
    """Problems of an identity set as a whole: the cases where runs fail.

    - one photo only: nothing is left to check the result against, and nothing to choose from;
    - near-duplicates: two photos closer than ``near_duplicate_distance`` (one photo twice adds nothing);
    - several faces in a photo: the largest is used, which may not be the client;
    - expressions unlike the reference's (``reference_landmarks`` given): no photo of the set opens its
      mouth or smiles about as much as the reference does, so the output has the client's expression from
      the closest photo, not the reference's.

    ``metric`` is the backend's (near-duplicates are measured on dlib's Euclidean scale; with a cosine
    backend the check is skipped).
    """
    from .identity import distance

    issues: list[QualityIssue] = []
    if len(photos) == 1:
        issues.append(QualityIssue(
            "single_photo", "The set has one photo: add more photos of the client (5–20 in different light) so "
                            "the best match can be chosen and the result checked against a photo it was not made "
                            "from."))
    if metric == "euclidean":
        with_embedding = [p for p in photos if p.embedding is not None]
        for i, a in enumerate(with_embedding):
            for b in with_embedding[i + 1:]:
                if a.embedding.shape != b.embedding.shape:
                    continue
                d = distance(a.embedding, b.embedding, metric)
                if d < thresholds.near_duplicate_distance:
                    issues.append(QualityIssue(
                        "near_duplicate", f"{a.name} and {b.name} look like the same photo (identity distance "
                                          f"{d:.2f}); use different photos of the client."))
    for photo in photos:
        if photo.face_count > 1:
            issues.append(QualityIssue(
                "several_faces", f"{photo.name} has {photo.face_count} faces: the largest is used; crop it to "
                                 "the client."))
    if reference_landmarks is not None:
        measured = [(expression_distance(p.landmarks, reference_landmarks), p) for p in photos
                    if p.landmarks is not None]
        if measured and min(d for d, _ in measured) > thresholds.max_mouth_difference:
            closest = min(measured, key=lambda m: m[0])[1]
            issues.append(QualityIssue(
                "expression_mismatch",
                f"The reference's mouth is {_mouth_words(reference_landmarks)}, but no photo of the set comes close "
                f"(the nearest, {closest.name}: {_mouth_words(closest.landmarks)}): the face will have that photo's "
                "expression, not the reference's; add a photo of the client with a similar expression."))
    return tuple(issues)


def _mouth_words(landmarks: np.ndarray) -> str:
    openness = mouth_openness(landmarks)
    if openness < 0.05:
        shape = "closed"
    elif openness < 0.3:
        shape = "parted (teeth showing)"
    else:
        shape = "open"
    return f"{shape}, smiling" if smile(landmarks) >= SMILING else f"{shape}, not smiling"
