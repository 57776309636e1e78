"""One entry point for a run: :func:`run` takes a :class:`RunRequest` and returns every stage's image.

This is the one orchestrator for both engines: it loads the inputs, crops the face, pastes
through the mask, fills the stage images and scores the output; the engine (:mod:`.engine`)
answers the stage calls. Progress goes to a callback per stage and step; a :class:`CancelToken`
stops the run between steps and the partial result is discarded (``Cancelled`` is raised).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import classic
from .align import FaceCrop
from .classic_engine import ClassicEngine
from .engine import Engine, Pasted, Scene
from .errors import FaceError, RequestError
from .face import Face
from .identity_report import IdentityReport, assess_run
from .imaging import Picture, from_float, save_image, to_float, to_uint8
from .inputs import load_reference, load_scene, load_sources, load_user_mask
from .progress import CancelToken, ProgressCallback, Reporter, StageClock
from .request import RunRequest
from .stages import STAGES, Stage, Stop

if TYPE_CHECKING:
    from .diffusion.engine import DiffusionEngine

__all__ = ["STAGES", "STOPS", "RunResult", "diffusion_engine", "engine_for", "load_reference", "load_sources",
           "run", "save_result"]

#: Where a run may stop early (``until``), for the app's per-stage buttons; ``None`` runs everything.
STOPS = tuple(Stop)


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
    #: The stages other than the final as PNG files, when the worker that ran it encoded them
    #: (:func:`with_stage_files`), so the one process that writes the project does not have to.
    stage_files: dict[str, bytes] = field(default_factory=dict)


def with_stage_files(result: RunResult) -> RunResult:
    """``result`` with its stages (all but the final) encoded as the project stores them."""
    from .imaging import png_bytes

    return replace(result, stage_files={name: png_bytes(image) for name, image in result.stages.items()
                                        if name != "final"})


def run(request: RunRequest, on_progress: ProgressCallback | None = None,
        cancel: CancelToken | None = None, models_dir: Path | None = None, until: str | None = None, *,
        diffusion: DiffusionEngine | None = None, engine: Engine | None = None) -> RunResult:
    """Run the pipeline for ``request`` with the engine it names, to the end or ``until`` a stage
    (``"identity"``: the pair; ``"shading"``: up to the pasted face; ``"harmonize"``: all).

    ``diffusion`` is the engine that keeps diffusion models loaded between runs (the app's worker
    holds one); without it a fresh one reads the model settings and loads them. ``engine`` replaces
    the one the request names (tests, benchmarks).

    Raises
    ------
    ImageError, FaceError, RequestError, ModelMissingError
        For bad input, each with a message saying what to do.
    Cancelled
        When ``cancel`` was set; nothing partial is returned.
    """
    reporter = Reporter(on_progress, cancel)
    stop = _stop(until)
    engine = engine or engine_for(request, diffusion)
    clock = StageClock()
    timings, lap = clock.timings, clock.lap

    scene, warnings = load_scene(request, reporter, models_dir)
    request, notes = engine.prepare(scene, reporter)  # the request as run: its models named and pinned
    scene = dataclasses.replace(scene, request=request)
    warnings += notes
    lap("load")

    pair = engine.identity_pair(scene, reporter)
    lap("identity")
    stages: dict[str, np.ndarray] = {Stage.REFERENCE: to_uint8(scene.crop_rgb), Stage.A: to_uint8(pair.a),
                                     Stage.B: to_uint8(pair.b)}
    if stop is Stop.IDENTITY:
        return _partial(request, stages, pair.source_index, scene.face, timings, warnings, engine)

    shading = engine.shading(scene, pair, reporter)
    lap("shading")

    reporter("paste", 0, 1, "Pasting the face back")
    seam_px = request.harmonize.seam_width / scene.crop.scale
    height, width = scene.picture.pixels.shape[:2]
    mask, mask_crop, roi = paste_mask(request, (height, width), scene.crop, seam_px,
                                      lambda: engine.auto_mask(scene, pair))
    pasted = paste(scene, shading.shaded, mask, mask_crop, roi)
    lap("paste")
    stages.update({Stage.LIGHT_MAP: to_uint8(shading.light), Stage.HF_MAP: to_uint8(np.clip(shading.hf + 0.5, 0, 1)),
                   Stage.SHADED: to_uint8(shading.shaded), Stage.MASK: to_uint8(np.clip(mask_crop, 0, 1)),
                   Stage.PASTED: to_uint8(pasted.pixels)})
    if stop is Stop.SHADING:
        return _partial(request, stages, pair.source_index, scene.face, timings, warnings, engine)

    harmonized = engine.harmonize(scene, pasted, seam_px, reporter)
    x0, y0, x1, y1 = roi
    final_pixels = pasted.pixels.copy()
    window = final_pixels[y0:y1, x0:x1]
    window[harmonized.region] = harmonized.window[harmonized.region]  # outside: the pasted (reference) pixels
    region = np.zeros(final_pixels.shape[:2], bool)
    region[y0:y1, x0:x1] = harmonized.region | (mask > 0)
    lap("harmonize")
    reporter("harmonize", 1, 1, "Done")

    final = scene.picture.with_pixels(final_pixels)
    stages[Stage.FINAL] = to_uint8(final_pixels)
    report = assess_run(stages[Stage.FINAL], scene.picture.rgb8(), scene.face, scene.sources, pair.source_index,
                        models_dir)
    lap("score")
    return RunResult(request=request, final=final, stages=stages, region=region, source_index=pair.source_index,
                     face_box=scene.face.box, timings=timings,
                     identity_score=None if report is None else report.score,
                     score_backend=None if report is None else report.backend,
                     warnings=tuple(warnings) + (report.warnings if report else ()), models=engine.models_used(),
                     identity_report=report)


#: The engines a request may name, each made on demand (the diffusion one imports PyTorch).
ENGINES: dict[str, Callable[[], Engine]] = {"classic": ClassicEngine, "diffusion": lambda: diffusion_engine()}


def engine_for(request: RunRequest, diffusion: DiffusionEngine | None = None) -> Engine:
    """The engine ``request`` names; ``diffusion`` is a loaded diffusion engine to reuse."""
    if request.engine == "diffusion" and diffusion is not None:
        return diffusion
    return ENGINES[request.engine]()


def diffusion_engine() -> DiffusionEngine:
    """A new diffusion engine; a clear error where this build has no PyTorch (the lean installer)."""
    try:
        from .diffusion.engine import DiffusionEngine
    except ImportError as exc:
        raise RequestError(f"This installation has no diffusion engine ({exc.name or 'PyTorch'} is not included); "
                           "use the classic engine, or install the full MegaPortrait package.") from None
    return DiffusionEngine()


def paste(scene: Scene, shaded: np.ndarray, mask: np.ndarray, mask_crop: np.ndarray,
          roi: tuple[int, int, int, int]) -> Pasted:
    """The shaded face pasted into the reference at full resolution; only pixels inside the mask change."""
    x0, y0, x1, y1 = roi
    reference = scene.picture.pixels
    roi_float = classic.paste_back(to_float(reference[y0:y1, x0:x1]), shaded, scene.crop, mask, roi)
    pixels = reference.copy()
    window = pixels[y0:y1, x0:x1]
    inside = mask > 0
    window[inside] = from_float(roi_float, reference.dtype)[inside]
    return Pasted(roi, mask, mask_crop, shaded, pixels, roi_float)


def _stop(until: str | None) -> Stop | None:
    if until is None or until == Stop.HARMONIZE:
        return None
    try:
        return Stop(until)
    except ValueError:
        raise RequestError(f"Unknown stage {until!r}; use one of {', '.join(STOPS)}.") from None


def _partial(request: RunRequest, stages: dict[str, np.ndarray], source_index: int, face: Face,
             timings: dict[str, float], warnings: list[str], engine: Engine) -> RunResult:
    return RunResult(request=request, final=None, stages=stages, region=None, source_index=source_index,
                     face_box=face.box, timings=timings, warnings=tuple(warnings), models=engine.models_used())


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
    if result.final is None:
        raise RequestError("This run stopped before the final image; run every stage to save it.")
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
