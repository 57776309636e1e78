"""Importing photos into a project: identity photos and references, each with its face analysis.

Every file gets a result (imported, duplicate, or rejected with the reason); one bad file never
stops the others and never changes what the project already holds.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..core.errors import ImageError, ModelMissingError
from ..core.face import Face, detect_faces
from ..core.identity import available_backend, distance
from ..core.imaging import DEFAULT_MAX_PIXELS, Picture, read_image_file
from ..core.masks import face_mask
from ..core.quality import (
    QualityIssue,
    QualityReport,
    QualityThresholds,
    SetPhoto,
    check_identity_photo,
    check_identity_set,
)
from .project import Project

IMPORTED, DUPLICATE, REJECTED = "imported", "duplicate", "rejected"

#: Called after each file: (files done, files in all, the file's result).
ImportProgress = Callable[[int, int, "ImportResult"], None]


@dataclass(frozen=True)
class ImportResult:
    path: str
    status: str  # imported | duplicate | rejected
    reason: str = ""
    item_id: int | None = None  # the photo or reference row
    face_count: int = 0


def import_identity_photos(project: Project, identity_id: int, paths: Iterable[str | Path],
                           on_progress: ImportProgress | None = None,
                           max_pixels: int = DEFAULT_MAX_PIXELS) -> list[ImportResult]:
    """Import photos into an identity set, with face analysis, quality report and embedding."""
    project.identity(identity_id)  # fails clearly before any file is read
    backend, _ = available_backend()
    paths = [Path(p) for p in paths]
    results = []
    for done, path in enumerate(paths, start=1):
        result = _import_identity_photo(project, identity_id, path, backend, max_pixels)
        results.append(result)
        if on_progress:
            on_progress(done, len(paths), result)
    return results


def import_references(project: Project, paths: Iterable[str | Path], on_progress: ImportProgress | None = None,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> list[ImportResult]:
    """Import reference portraits, with their faces (largest chosen) and the automatic mask."""
    paths = [Path(p) for p in paths]
    results = []
    for done, path in enumerate(paths, start=1):
        result = _import_reference(project, path, max_pixels)
        results.append(result)
        if on_progress:
            on_progress(done, len(paths), result)
    return results


def _read_faces(path: Path, max_pixels: int) -> tuple[bytes, Picture, np.ndarray, list[Face]]:
    """The file's bytes, its picture, 8-bit RGB and faces (largest first); ImageError if unreadable."""
    data, picture = read_image_file(path, max_pixels)
    rgb = picture.rgb8()
    try:
        faces = detect_faces(rgb)
    except (cv2.error, ValueError, MemoryError) as exc:  # one odd picture never stops the others
        raise ImageError(f"{path.name}: its faces could not be analysed ({type(exc).__name__}: "
                         f"{str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}).") from None
    return data, picture, rgb, faces


def _import_identity_photo(project: Project, identity_id: int, path: Path, backend, max_pixels: int) -> ImportResult:
    try:
        data, picture, rgb, faces = _read_faces(path, max_pixels)
    except ImageError as exc:
        return ImportResult(str(path), REJECTED, str(exc))
    report = check_identity_photo(rgb, faces)
    if not faces:
        return ImportResult(str(path), REJECTED, f"{path.name}: no face found; use a photo where the face is visible.")
    embedding = _embed(backend, rgb, faces[0])
    with project.files.lock:  # from storing the file to committing its row: repair never takes it for an orphan
        stored = project.store(data, _suffix(path, picture.source_format), "photo")
        with project.db.write() as tx:
            if tx.execute("SELECT 1 FROM identity_photos WHERE identity_id = ? AND file_sha = ?",
                          (identity_id, stored.sha256)).fetchone():
                return ImportResult(str(path), DUPLICATE, f"{path.name} is already in this identity set.",
                                    face_count=len(faces))
            report = _with_near_duplicates(report, tx, identity_id, path.name, embedding, backend)
            sha = project.register(tx, stored)
            cur = tx.execute(
                """INSERT INTO identity_photos (identity_id, file_sha, original_name, width, height, faces, quality,
                                                embedding, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (identity_id, sha, path.name, picture.width, picture.height, _faces_json(faces),
                 json.dumps(report.to_json()), None if embedding is None else embedding.astype(np.float32).tobytes(),
                 time.time()))
    reason = "; ".join(issue.message for issue in report.issues)
    return ImportResult(str(path), IMPORTED, reason, int(cur.lastrowid), len(faces))


def _import_reference(project: Project, path: Path, max_pixels: int) -> ImportResult:
    try:
        data, picture, rgb, faces = _read_faces(path, max_pixels)
    except ImageError as exc:
        return ImportResult(str(path), REJECTED, str(exc))
    if not faces:
        return ImportResult(str(path), REJECTED, f"{path.name}: no face found; a reference needs a visible face.")
    with project.files.lock:  # as above
        stored = project.store(data, _suffix(path, picture.source_format), "reference")
        with project.db.write() as tx:
            row = tx.execute("SELECT id FROM reference_images WHERE file_sha = ?", (stored.sha256,)).fetchone()
            if row:
                return ImportResult(str(path), DUPLICATE, f"{path.name} is already in the gallery.", row["id"],
                                    len(faces))
            sha = project.register(tx, stored)
            cur = tx.execute(
                """INSERT INTO reference_images (name, file_sha, original_name, width, height, faces, face_count,
                                                 created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (path.stem, sha, path.name, picture.width, picture.height, _faces_json(faces), len(faces),
                 time.time()))
    reference_id = int(cur.lastrowid)
    project.save_mask(reference_id, auto_mask(faces[0], (picture.height, picture.width)), source="auto")
    return ImportResult(str(path), IMPORTED, "", reference_id, len(faces))


def _with_near_duplicates(report: QualityReport, tx, identity_id: int, name: str, embedding: np.ndarray | None,
                          backend) -> QualityReport:
    """The photo's report plus a ``near_duplicate`` issue for each photo of the set it nearly repeats."""
    if embedding is None or backend is None or backend.metric != "euclidean":
        return report
    limit = QualityThresholds().near_duplicate_distance
    issues = []
    for row in tx.execute("SELECT original_name, embedding FROM identity_photos WHERE identity_id = ? "
                          "AND embedding IS NOT NULL", (identity_id,)):
        other = np.frombuffer(row["embedding"], np.float32)
        if other.shape == embedding.shape and (d := distance(embedding, other, backend.metric)) < limit:
            issues.append(QualityIssue("near_duplicate", f"{name} looks like the same photo as {row['original_name']} "
                                                         f"(identity distance {d:.2f}); use different photos."))
    return dataclasses.replace(report, issues=report.issues + tuple(issues)) if issues else report


def identity_set_issues(project: Project, identity_id: int,
                        reference_id: int | None = None) -> tuple[QualityIssue, ...]:
    """The problems of an identity set as a whole (:func:`core.quality.check_identity_set`), against a
    reference's chosen face when ``reference_id`` is given (expressions)."""
    photos = [SetPhoto(p.original_name, np.asarray(p.faces[0]["landmarks"], np.float32) if p.faces else None,
                       p.embedding if p.embedding is not None and p.embedding.shape == (128,) else None,
                       len(p.faces))
              for p in project.identity_photos(identity_id)]
    if not photos:
        return ()
    reference = None
    if reference_id is not None:
        ref = project.reference(reference_id)
        if ref.faces:
            reference = np.asarray(ref.faces[min(ref.chosen_face, len(ref.faces) - 1)]["landmarks"], np.float32)
    return check_identity_set(photos, reference)


def auto_mask(face: Face, shape: tuple[int, int]) -> np.ndarray:
    """The automatic reference mask: the face oval, feathered by 2 % of the face size."""
    return face_mask(face.landmarks, shape, grow_px=0, feather_px=max(1.0, 0.02 * face.size))


def _faces_json(faces: list[Face]) -> str:
    return json.dumps([face.to_json() for face in faces])


def _embed(backend, rgb: np.ndarray, face: Face) -> np.ndarray | None:
    if backend is None:
        return None
    try:
        return backend.embed(rgb, face)
    except ModelMissingError:
        return None


def _suffix(path: Path, source_format: str) -> str:
    suffix = path.suffix.lower()
    if suffix in {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}:
        return suffix
    return {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "WEBP": ".webp"}.get(source_format, ".img")
