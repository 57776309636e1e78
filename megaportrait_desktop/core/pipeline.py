"""One entry point for a run: :func:`run` takes a :class:`RunRequest` and returns every stage's image.

Progress goes to a callback per stage and step; a :class:`CancelToken` stops the run between steps
and the partial result is discarded (``Cancelled`` is raised, nothing is returned).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import classic
from .align import FaceCrop, crop_face
from .errors import FaceError, ImageError, RequestError
from .face import Face, choose_face, detect_faces
from .identity_report import IdentityReport, assess_run
from .imaging import Picture, from_float, load_image, save_image, to_float, to_uint8
from .progress import CancelToken, ProgressCallback, Reporter, StageClock
from .request import RunRequest

if TYPE_CHECKING:
    from .diffusion.engine import DiffusionEngine

#: Stage images, in pipeline order; crop-space stages first, full-resolution ones last.
STAGES = ("reference", "A", "B", "light_map", "hf_map", "shaded", "mask", "pasted", "final")
#: Where a run may stop early (``until``), for the app's per-stage buttons; ``None`` runs everything.
STOPS = ("identity", "shading", "harmonize")


@dataclass(frozen=True, eq=False)
class RunResult:
    """What a run made.

    Attributes
    ----------
    final:
        The finished portrait at the reference's resolution and bit depth, with its ICC and EXIF.
    stages:
        ``uint8`` images by :data:`STAGES` name: crop-space ``reference``, ``A``, ``B``,
        ``light_map``, ``hf_map`` (on mid-grey), ``shaded``, ``mask`` (grey), and full-resolution
        ``pasted`` and ``final``. A run stopped early (``until``) has the stages so far and no final.
    region:
        Bool ``(H, W)``: the harmonisation region; every pixel outside it equals the reference's.
    models:
        The models a diffusion run used, with their hashes, for the output's provenance.
    """

    request: RunRequest
    final: Picture | None
    stages: dict[str, np.ndarray]
    region: np.ndarray | None
    source_index: int
    face_box: tuple[float, float, float, float]
    timings: dict[str, float] = field(default_factory=dict)
    identity_score: float | None = None
    score_backend: str | None = None
    warnings: tuple[str, ...] = ()
    #: Diffusion engine: every model the run used, by role (and ``lora``): ``{"path", "sha256"}``.
    models: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Who the output face looks like (``identity_score`` is its single number); ``None`` if not measured.
    identity_report: IdentityReport | None = None


def run(request: RunRequest, on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None, models_dir: Path | None = None, until: str | None = None, *,
        diffusion: DiffusionEngine | None = None) -> RunResult:
    """Run the pipeline for ``request`` with the engine it names, to the end or ``until`` a stage
    (``"identity"``: the pair; ``"shading"``: up to the pasted face; ``"harmonize"``: all).

    ``diffusion`` is the engine that keeps diffusion models loaded between runs (the app's worker
    holds one); without it a fresh one reads the model settings and loads them.

    Raises
    ------
    ImageError, FaceError, RequestError, ModelMissingError
        For bad input, each with a message saying what to do.
    Cancelled
        When ``cancel`` was set; nothing partial is returned.
    """
    reporter = Reporter(on_progress, cancel)
    if until is not None and until not in STOPS:
        raise RequestError(f"Unknown stage {until!r}; use one of {', '.join(STOPS)}.")
    if request.engine == "diffusion":
        return (diffusion or diffusion_engine()).run(request, reporter, models_dir, until=until)
    return _run_classic(request, reporter, models_dir, until)


def diffusion_engine() -> DiffusionEngine:
    """A new diffusion engine; a clear error where this build has no PyTorch (the lean installer)."""
    try:
        from .diffusion.engine import DiffusionEngine
    except ImportError as exc:
        raise RequestError(f"This installation has no diffusion engine ({exc.name or 'PyTorch'} is not included); "
                           "use the classic engine, or install the full MegaPortrait package.") from None
    return DiffusionEngine()


# ------------------------------------------------------------------------------------------ inputs


def load_reference(path: str | Path, face_index: int | None) -> tuple[Picture, list[Face], Face]:
    """The reference picture, its faces (largest first) and the chosen one."""
    picture = load_image(path)
    faces = detect_faces(picture.rgb8())
    if not faces:
        raise FaceError(f"{Path(path).name}: no face found in the reference; choose a portrait with a visible face.")
    return picture, faces, choose_face(faces, face_index)


def load_sources(paths: tuple[str, ...], reporter: Reporter) -> tuple[list[classic.SourcePhoto], list[str]]:
    """The identity photos that have a face; the others are skipped with a warning."""
    sources, warnings = [], []
    for i, path in enumerate(paths):
        reporter("load", i, len(paths), f"Reading identity photo {Path(path).name}")
        try:
            picture = load_image(path)
        except ImageError as exc:
            warnings.append(f"Skipped {exc}")
            continue
        rgb8 = picture.rgb8()
        faces = detect_faces(rgb8)
        if not faces:
            warnings.append(f"Skipped {Path(path).name}: no face found.")
            continue
        sources.append(classic.SourcePhoto(rgb=to_float(picture.pixels), face=faces[0], name=Path(path).name,
                                           face_count=len(faces)))
    if not sources:
        raise FaceError("None of the identity photos has a usable face; add clear photos of the client.")
    return sources, warnings


def load_user_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """A user-edited mask PNG (grey or alpha) at the reference's size, as float32 ``[0, 1]``."""
    picture = load_image(path)
    grey = picture.alpha if picture.alpha is not None else picture.pixels[:, :, 0]
    if grey.shape != tuple(shape):
        raise ImageError(f"{Path(path).name}: the mask is {grey.shape[1]}×{grey.shape[0]} but the reference is "
                         f"{shape[1]}×{shape[0]}; reset the mask to the automatic one.")
    return to_float(grey)


# ------------------------------------------------------------------------------------------ classic


def _run_classic(request: RunRequest, report: Reporter, models_dir: Path | None,
                 until: str | None = None) -> RunResult:
    clock = StageClock()
    timings, lap = clock.timings, clock.lap

    total = len(request.identity) + 1
    report("load", 0, total, "Reading the reference")
    picture, _, face = load_reference(request.reference, request.face_index)
    sources, warnings = load_sources(request.identity, report)
    reference = to_float(picture.pixels)
    crop = crop_face(reference, face.landmarks, request.crop_size)
    lap("load")

    report("identity", 0, 1, "Aligning the best-matching identity photo")
    pair = classic.identity_pair(crop, crop.image, sources, face, request.identity_params)
    lap("identity")
    stages = {"reference": to_uint8(crop.image), "A": to_uint8(pair.a), "B": to_uint8(pair.b)}
    if until == "identity":
        return _partial(request, stages, pair.source_index, face, timings, warnings)

    report("shading", 0, 1, "Separating light and detail")
    light, hf, shaded = classic.shade(pair.a, pair.b, request.shading)
    lap("shading")

    report("paste", 0, 1, "Pasting the face back")
    seam_px = request.harmonize.seam_width / crop.scale
    mask, mask_crop, roi = paste_mask(request, picture.pixels.shape[:2], crop, seam_px,
                                      lambda: classic.crop_mask(crop, face, pair.b_landmarks, request.mask_params))
    x0, y0, x1, y1 = roi
    ref_roi = reference[y0:y1, x0:x1]
    pasted = classic.paste_back(ref_roi, shaded, crop, mask, roi)
    lap("paste")
    pasted_full = picture.pixels.copy()
    pasted_full[y0:y1, x0:x1] = from_float(pasted, picture.pixels.dtype)
    stages.update({"light_map": to_uint8(light), "hf_map": to_uint8(np.clip(hf + 0.5, 0, 1)),
                   "shaded": to_uint8(shaded), "mask": to_uint8(np.clip(mask_crop, 0, 1)),
                   "pasted": to_uint8(pasted_full)})
    if until == "shading":
        return _partial(request, stages, pair.source_index, face, timings, warnings)

    report("harmonize", 0, 1, "Matching colour and blending the seam")
    local_landmarks = face.landmarks.copy()
    local_landmarks[:, 0] -= x0
    local_landmarks[:, 1] -= y0
    skin = classic.skin_mask(local_landmarks, mask.shape, margin=3.0 / crop.scale) & (mask > 0.5)
    harmonized, region = classic.harmonize(pasted, ref_roi, mask, skin, request.harmonize, seam_px)
    final_pixels = picture.pixels.copy()
    patch = from_float(harmonized, picture.pixels.dtype)
    window = final_pixels[y0:y1, x0:x1]
    window[region] = patch[region]  # outside the region: the reference's own pixels, untouched
    full_region = np.zeros(picture.pixels.shape[:2], bool)
    full_region[y0:y1, x0:x1] = region
    lap("harmonize")
    report("harmonize", 1, 1, "Done")

    final = picture.with_pixels(final_pixels)
    stages["final"] = to_uint8(final_pixels)
    report = assess_run(final.rgb8(), picture.rgb8(), face, sources, pair.source_index, models_dir)
    lap("score")
    return RunResult(request=request, final=final, stages=stages, region=full_region,
                     source_index=pair.source_index, face_box=face.box, timings=timings,
                     identity_score=None if report is None else report.score,
                     score_backend=None if report is None else report.backend,
                     warnings=tuple(warnings) + (report.warnings if report else ()), identity_report=report)


def _partial(request: RunRequest, stages: dict[str, np.ndarray], source_index: int, face: Face,
             timings: dict[str, float], warnings: list[str]) -> RunResult:
    return RunResult(request=request, final=None, stages=stages, region=None, source_index=source_index,
                     face_box=face.box, timings=timings, warnings=tuple(warnings))


def _score(final: Picture, face: Face, sources: list[classic.SourcePhoto],
           models_dir: Path | None) -> tuple[float | None, str | None]:
    """The identity score of the output face and the backend's name (the diffusion engine's call)."""
    report = assess_run(final.rgb8(), None, face, sources, None, models_dir)
    return (None, None) if report is None else (report.score, report.backend)


def paste_mask(request: RunRequest, shape: tuple[int, int], crop: FaceCrop, seam_px: float,
               auto_mask: Callable[[], np.ndarray]) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The paste mask over its region of the full image, the same mask in crop space, and the region.

    The user's mask (``request.mask``, full resolution) wins; else ``auto_mask()`` gives the engine's
    automatic mask in crop space. The region is padded by the seam band so harmonisation fits in it.
    """
    if request.mask:
        full = load_user_mask(request.mask, shape)
        roi = _roi_of(full > 0, seam_px, full.shape)
        mask = full[roi[1]:roi[3], roi[0]:roi[2]]
        mask_crop = cv2.warpAffine(full, crop.matrix, (crop.size, crop.size), flags=cv2.INTER_LINEAR)
    else:
        mask_crop = auto_mask()
        roi = _expand(crop.full_roi(), seam_px, shape)
        mask = classic.mask_to_full(mask_crop, crop, roi)
    if not (mask > 0).any():
        raise FaceError("The mask is empty: paint the face area or reset the mask to the automatic one.")
    return mask, mask_crop, roi


def _expand(roi: tuple[int, int, int, int], pad: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    p = int(np.ceil(pad)) + 4
    h, w = shape[:2]
    return max(0, roi[0] - p), max(0, roi[1] - p), min(w, roi[2] + p), min(h, roi[3] + p)


def _roi_of(inside: np.ndarray, pad: float, shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(inside)
    if len(ys) == 0:
        raise FaceError("The mask is empty: paint the face area or reset the mask to the automatic one.")
    return _expand((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1), pad, shape)


# ------------------------------------------------------------------------------------------ outputs


def save_result(result: RunResult, out: str | Path, stages: bool = True) -> Path:
    """Write the final image to ``out`` (a file, or a folder → ``final.png``) and, beside it, the stages.

    The final keeps the reference's ICC profile and EXIF; stage images go to ``<stem>_stages/``.
    """
    out = Path(out)
    if out.suffix.lower() not in {".png", ".jpg", ".jpeg", ".tif", ".tiff"}:
        out = out / "final.png"
    text = {"megaportrait:request": result.request.to_json()}
    if result.models:
        text["megaportrait:models"] = json.dumps(result.models, sort_keys=True)
    save_image(out, result.final, text=text)
    if stages:
        folder = out.parent / f"{out.stem}_stages"
        for name in STAGES:
            save_image(folder / f"{name}.png", result.stages[name])
    return out
