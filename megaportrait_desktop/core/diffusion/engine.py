"""The diffusion engine: Identity Net pair, Shading Net and Harmonization Net behind the
:class:`~..engine.Engine` interface (the orchestrator, :func:`..pipeline.run`, does the rest).

:class:`DiffusionEngine` keeps the loaded models between runs (the app's worker holds one; the CLI
makes one per command), and trains identity LoRAs on the same base.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from .. import classic
from ..align import crop_face, warp_to_full
from ..engine import Harmonized, Pair, Pasted, Scene, Shading
from ..errors import FaceError, ModelMissingError
from ..face import detect_faces
from ..imaging import from_float, load_image, to_float, to_uint8
from ..masks import face_mask
from ..model_settings import ROLE_NAMES, ROLES, ModelSettings, load_settings
from ..progress import Reporter
from ..request import RunRequest
from .control import face_geometry
from .devices import DeviceChoice, choose_device
from .harmonize import blend_weight, harmonize
from .models import fingerprint, resolve, resolve_all
from .pair import generate_pair, pair_settings
from .runtime import LoadedModels, load_models
from .shading import shade
from .training import TrainingParams, TrainingResult, train_identity


class DiffusionEngine:
    """Runs the diffusion stages; keeps the last loaded models for the next run.

    Parameters
    ----------
    settings:
        Model and device choices; ``None`` reads ``models.json`` from the config folder at each run.
    loaded:
        Models already in memory (benchmarks build random ones): used for every run, settings ignored.
    """

    name = "diffusion"

    def __init__(self, settings: ModelSettings | None = None, loaded: LoadedModels | None = None) -> None:
        self._settings = settings
        self._loaded: LoadedModels | None = loaded
        self._key: tuple | None = None
        self._fixed = loaded is not None
        self._hashes: dict = {}
        self._models: LoadedModels | None = loaded
        self._used: dict[str, dict[str, str]] = {}

    @property
    def settings(self) -> ModelSettings:
        return self._settings if self._settings is not None else load_settings()

    def device(self, override: str | None = None) -> DeviceChoice:
        s = self.settings
        return choose_device(override or s.device, s.precision, s.offload, s.fast_path, s.low_memory, s.compile)

    def models(self, overrides: dict[str, str | None] | None = None, device: str | None = None,
               roles: tuple[str, ...] = ROLES) -> LoadedModels:
        """Resolve and load ``roles`` (reusing the loaded set when nothing changed)."""
        if self._fixed and self._loaded is not None:
            return self._loaded
        resolved = resolve_all(self.settings, overrides, roles)
        choice = self.device(device)
        key = (frozenset((r, str(m.path), str(m.config)) for r, m in resolved.items()), choice)
        # A subset of what is loaded (training needs only the base) reuses the loaded set.
        if self._key is None or not (key[0] <= self._key[0] and key[1] == self._key[1]):
            self._loaded = None  # free the old set before loading the new one
            self._loaded = load_models(resolved, choice)
            self._key = key
        assert self._loaded is not None
        return self._loaded

    # -------------------------------------------------------------------------------------- training

    def train_identity(self, photos: Sequence[str | Path], out_dir: str | Path, params: TrainingParams,
                       reporter: Reporter | None = None, overrides: dict[str, str | None] | None = None,
                       device: str | None = None) -> TrainingResult:
        """Train an identity LoRA on the faces of ``photos`` (aligned crops at ``params.resolution``).

        Photos without a face are skipped; raises :class:`FaceError` when none has one.
        """
        reporter = reporter or Reporter()
        crops = []
        for i, path in enumerate(photos):
            reporter("train", 0, params.steps, f"Aligning identity photo {i + 1}/{len(photos)}")
            picture = load_image(path)
            faces = detect_faces(picture.rgb8())
            if faces:
                crops.append(np.clip(crop_face(to_float(picture.pixels), faces[0].landmarks,
                                               params.resolution).image, 0.0, 1.0))
        if not crops:
            raise FaceError("None of the identity photos has a usable face; add clear photos of the client.")
        models = self.models(overrides, device, roles=("base",))
        models.set_lora(None)  # train on the bare base, never on top of a loaded identity (or speed) LoRA
        models.set_speed_lora(None)
        return train_identity(crops, models.components, out_dir, params, models.choice, reporter,
                              fast=models.fast is not None)

    # ------------------------------------------------------------------------------------------ stages

    def prepare(self, scene: Scene, reporter: Reporter) -> tuple[RunRequest, list[str]]:
        """Load the models the request names (or the settings give), with its identity LoRA; returns the
        request with every model named by path and SHA-256, so recalling it reproduces the run."""
        request = scene.request
        d = request.diffusion
        reporter("load", 0, 1, "Loading the models")
        models = self._models = self.models(d.model_overrides(), d.device)
        models.set_lora(d.lora)
        draft = d.quality == "draft"
        speed = (d.speed_lora or self._speed_lora_path()) if draft else None
        if speed is not None:
            models.set_speed_lora(speed)  # kept loaded after a draft: a final call runs it at scale 0
        models.set_draft(draft)
        self._used = {role: {"path": str(m.path), "sha256": fingerprint(m.path, self._hashes)}
                      for role, m in models.resolved.items()}
        for role, path in (("lora", d.lora), ("speed_lora", speed)):
            if path:
                self._used[role] = {"path": str(path), "sha256": fingerprint(path, self._hashes)}
        check_pinned(d.model_sha256, self._used)
        warnings = []
        if d.lora is None:
            warnings.append("No identity LoRA was given, so B is not the client; train one with train-identity.")
        pinned = replace(d, model_sha256={role: m["sha256"] for role, m in self._used.items()},
                         speed_lora=str(speed) if speed else None,
                         **{role: m["path"] for role, m in self._used.items() if role in ROLES})
        return request.replace(diffusion=pinned), warnings

    def _speed_lora_path(self) -> str:
        """The speed LoRA of the model settings; a clear error when none is installed."""
        spec = self.settings.models.get("speed_lora")
        if spec is None:
            raise ModelMissingError("Draft quality needs a speed LoRA (LCM-LoRA, Hyper-SD or TCD for SD 1.5); "
                                    "install one in Models → Model Manager, or run at Final quality.")
        return str(resolve("speed_lora", spec).path)

    def identity_pair(self, scene: Scene, reporter: Reporter) -> Pair:
        request, d = scene.request, scene.request.diffusion
        reporter("identity", 0, 1, "Reading the face geometry")
        control = face_geometry(d.face_control, to_uint8(scene.crop_rgb), scene.models_dir)
        a_settings, b_settings = pair_settings(request.identity_params, d)
        a, b = generate_pair(self._prepared(), scene.crop_rgb, control, a_settings, b_settings, d, request.steps,
                             request.seed, reporter)
        return Pair(a=a, b=b, source_index=classic.choose_source(scene.sources, scene.face))

    def shading(self, scene: Scene, pair: Pair, reporter: Reporter) -> Shading:
        request = scene.request
        reporter("shading", 0, 1, "Separating light and detail")
        return Shading(*shade(self._prepared(), pair.a, pair.b, request.shading, request.diffusion, request.steps,
                              request.seed, reporter))

    def auto_mask(self, scene: Scene, pair: Pair) -> np.ndarray:
        """The reference's face oval in the crop (the ControlNet keeps the generated face on it)."""
        points = scene.crop.to_crop(scene.face.landmarks)
        params = scene.request.mask_params
        return face_mask(points, (scene.crop.size, scene.crop.size), grow_px=params.grow, feather_px=params.feather)

    def harmonize(self, scene: Scene, pasted: Pasted, seam_px: float, reporter: Reporter) -> Harmonized:
        """Inpaint the seam band (and, lightly, the face) in crop space, then blend it back over the ROI."""
        request, d = scene.request, scene.request.diffusion
        crop_rgb = scene.crop_rgb
        # The pasted crop is the reference crop with the shaded face through the mask.
        pasted_crop = crop_rgb + np.clip(pasted.mask_crop, 0, 1)[:, :, None] * (pasted.shaded - crop_rgb)
        reporter("harmonize", 0, 1, "Harmonising the seam")
        weight_crop = blend_weight(pasted.mask_crop, request.harmonize, d)
        harmonized_crop = harmonize(self._prepared(), pasted_crop, weight_crop, d, request.steps, request.seed,
                                    reporter)
        roi = pasted.roi
        patch, _ = warp_to_full(harmonized_crop, scene.crop, roi=roi)
        weight, _ = warp_to_full(weight_crop, scene.crop, roi=roi, interpolation=cv2.INTER_LINEAR)
        weight[weight < 1e-3] = 0.0
        x0, y0, x1, y1 = roi
        current = pasted.pixels[y0:y1, x0:x1]
        window = to_float(current)
        blended = window + np.clip(weight, 0, 1)[:, :, None] * (np.clip(patch, 0, 1) - window)
        return Harmonized(window=from_float(blended, current.dtype), region=weight > 0)

    def _prepared(self) -> LoadedModels:
        if self._models is None:
            raise RuntimeError("DiffusionEngine.prepare() runs before the stages")
        return self._models

    def models_used(self) -> dict[str, dict[str, str]]:
        return dict(self._used)


def check_pinned(pinned: dict[str, str] | None, used: dict[str, dict[str, str]]) -> None:
    """A recalled request names the exact models it was made with: refuse to run with different ones.

    Raises
    ------
    ModelMissingError
        Naming the role, the file now found and what to do.
    """
    for role, sha in (pinned or {}).items():
        now = used.get(role)
        if now is None:
            continue
        if now["sha256"] != sha:
            name = ROLE_NAMES.get(role, role)
            raise ModelMissingError(
                f"The {name} at {now['path']} is not the one these settings were made with (SHA-256 {sha[:12]}…, "
                f"found {now['sha256'][:12]}…). Install that model again (Models → Model Manager, or the studio's "
                "model pack), or choose the current models to make a new version.")
