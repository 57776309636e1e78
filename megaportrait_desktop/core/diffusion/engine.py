"""The diffusion engine's run: Identity Net pair, Shading Net, paste-back, Harmonization Net.

:class:`DiffusionEngine` keeps the loaded models between runs (the app's worker holds one; the CLI
makes one per command). Its :meth:`~DiffusionEngine.run` takes the same :class:`RunRequest` as the
classic engine and returns the same :class:`RunResult` with every stage's image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .. import classic
from ..align import crop_face, warp_to_full
from ..errors import FaceError
from ..face import Face, detect_faces
from ..imaging import from_float, load_image, to_float, to_uint8
from ..masks import face_mask
from ..progress import Reporter, StageClock
from ..request import RunRequest
from .control import face_geometry
from .devices import DeviceChoice, choose_device
from .harmonize import blend_weight, composite, harmonize
from .models import ROLES, ModelSettings, fingerprint, load_settings, resolve_all
from .pair import generate_pair, pair_settings
from .runtime import LoadedModels, load_models
from .shading import shade
from .training import TrainingParams, TrainingResult, train_identity


class DiffusionEngine:
    """Runs the diffusion pipeline; keeps the last loaded models for the next run.

    Parameters
    ----------
    settings:
        Model and device choices; ``None`` reads ``models.json`` from the config folder at each run.
    loaded:
        Models already in memory (benchmarks build random ones): used for every run, settings ignored.
    """

    def __init__(self, settings: ModelSettings | None = None, loaded: LoadedModels | None = None) -> None:
        self._settings = settings
        self._loaded: LoadedModels | None = loaded
        self._key: tuple | None = None
        self._fixed = loaded is not None
        self._hashes: dict = {}

    @property
    def settings(self) -> ModelSettings:
        return self._settings if self._settings is not None else load_settings()

    def device(self, override: str | None = None) -> DeviceChoice:
        s = self.settings
        return choose_device(override or s.device, s.precision, s.offload, s.fast_path, s.low_memory, s.compile)

    def models(self, overrides: dict[str, str | None] | None = None, device: str | None = None,
               roles: tuple[str, ...] = ROLES) -> LoadedModels:
        """Resolve and load ``roles`` (reusing the loaded set when nothing changed)."""
        if self._fixed:
            return self._loaded
        resolved = resolve_all(self.settings, overrides, roles)
        choice = self.device(device)
        key = (frozenset((r, str(m.path), str(m.config)) for r, m in resolved.items()), choice)
        # A subset of what is loaded (training needs only the base) reuses the loaded set.
        if self._key is None or not (key[0] <= self._key[0] and key[1] == self._key[1]):
            self._loaded = None  # free the old set before loading the new one
            self._loaded = load_models(resolved, choice)
            self._key = key
        return self._loaded

    # -------------------------------------------------------------------------------------- training

    def train_identity(self, photos: list[str | Path], out_dir: str | Path, params: TrainingParams,
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
        models.set_lora(None)  # train on the bare base, never on top of a loaded identity
        return train_identity(crops, models.components, out_dir, params, models.choice, reporter,
                              fast=models.fast is not None)

    # ------------------------------------------------------------------------------------------- run

    def run(self, request: RunRequest, reporter: Reporter, models_dir: Path | None = None,
            until: str | None = None):
        """Run the diffusion pipeline for ``request`` (to the end, or ``until`` a stage);
        see :func:`megaportrait_desktop.core.pipeline.run`."""
        from ..pipeline import RunResult, _partial, _score, load_reference, load_sources, paste_mask

        d = request.diffusion
        clock = StageClock()
        timings, lap = clock.timings, clock.lap

        reporter("load", 0, len(request.identity) + 2, "Reading the reference")
        picture, _, face = load_reference(request.reference, request.face_index)
        sources, warnings = load_sources(request.identity, reporter)
        reference = to_float(picture.pixels)
        crop = crop_face(reference, face.landmarks, request.crop_size)
        crop_rgb = np.clip(crop.image, 0.0, 1.0).astype(np.float32)
        reporter("load", len(request.identity) + 1, len(request.identity) + 2, "Loading the models")
        models = self.models(d.model_overrides(), d.device)
        models.set_lora(d.lora)
        if d.lora is None:
            warnings.append("No identity LoRA was given, so B is not the client; train one with train-identity.")
        lap("load")

        reporter("identity", 0, 1, "Reading the face geometry")
        control = face_geometry(d.face_control, to_uint8(crop_rgb), models_dir)
        a_settings, b_settings = pair_settings(request.identity_params, d)
        a, b = generate_pair(models, crop_rgb, control, a_settings, b_settings, d, request.steps, request.seed,
                             reporter)
        lap("identity")
        if until == "identity":
            stages = {"reference": to_uint8(crop_rgb), "A": to_uint8(a), "B": to_uint8(b)}
            return _partial(request, stages, classic.choose_source(sources, face), face, timings, warnings)

        reporter("shading", 0, 1, "Separating light and detail")
        light, hf, shaded = shade(models, a, b, request.shading, d, request.steps, request.seed, reporter)
        lap("shading")

        reporter("paste", 0, 1, "Pasting the face back")
        seam_px = request.harmonize.seam_width / crop.scale
        mask, mask_crop, roi = paste_mask(request, picture.pixels.shape[:2], crop, seam_px,
                                          lambda: _auto_mask(crop, face, request))
        x0, y0, x1, y1 = roi
        pasted_roi = classic.paste_back(reference[y0:y1, x0:x1], shaded, crop, mask, roi)
        inside = mask > 0
        pasted_pixels = picture.pixels.copy()
        pasted_pixels[y0:y1, x0:x1] = composite(picture.pixels[y0:y1, x0:x1],
                                                from_float(pasted_roi, picture.pixels.dtype), inside)
        lap("paste")
        if until == "shading":
            stages = {"reference": to_uint8(crop_rgb), "A": to_uint8(a), "B": to_uint8(b),
                      "light_map": to_uint8(light), "hf_map": to_uint8(np.clip(hf + 0.5, 0, 1)),
                      "shaded": to_uint8(shaded), "mask": to_uint8(np.clip(mask_crop, 0, 1)),
                      "pasted": to_uint8(pasted_pixels)}
            return _partial(request, stages, classic.choose_source(sources, face), face, timings, warnings)

        # Harmonise in crop space: the pasted crop is the reference crop with the shaded face through the mask.
        pasted_crop = crop_rgb + np.clip(mask_crop, 0, 1)[:, :, None] * (shaded - crop_rgb)
        reporter("harmonize", 0, 1, "Harmonising the seam")
        weight_crop = blend_weight(mask_crop, request.harmonize, d)
        harmonized_crop = harmonize(models, pasted_crop, weight_crop, d, request.steps, request.seed, reporter)
        patch, _ = warp_to_full(harmonized_crop, crop, roi=roi)
        weight, _ = warp_to_full(weight_crop, crop, roi=roi, interpolation=cv2.INTER_LINEAR)
        weight[weight < 1e-3] = 0.0
        window = to_float(pasted_pixels[y0:y1, x0:x1])
        blended = window + np.clip(weight, 0, 1)[:, :, None] * (np.clip(patch, 0, 1) - window)
        harmonized = weight > 0
        final_pixels = pasted_pixels.copy()
        final_pixels[y0:y1, x0:x1] = composite(pasted_pixels[y0:y1, x0:x1],
                                               from_float(blended, picture.pixels.dtype), harmonized)
        region = np.zeros(picture.pixels.shape[:2], bool)
        region[y0:y1, x0:x1] = inside | harmonized
        lap("harmonize")
        reporter("harmonize", 1, 1, "Done")

        final = picture.with_pixels(final_pixels)
        stages = {
            "reference": to_uint8(crop_rgb), "A": to_uint8(a), "B": to_uint8(b), "light_map": to_uint8(light),
            "hf_map": to_uint8(np.clip(hf + 0.5, 0, 1)), "shaded": to_uint8(shaded),
            "mask": to_uint8(np.clip(mask_crop, 0, 1)), "pasted": to_uint8(pasted_pixels),
            "final": to_uint8(final_pixels),
        }
        score, backend = _score(final, face, sources, models_dir)
        lap("score")
        used = {role: {"path": str(m.path), "sha256": fingerprint(m.path, self._hashes)}
                for role, m in models.resolved.items()}
        if d.lora:
            used["lora"] = {"path": str(d.lora), "sha256": fingerprint(d.lora, self._hashes)}
        return RunResult(request=request, final=final, stages=stages, region=region,
                         source_index=classic.choose_source(sources, face), face_box=face.box, timings=timings,
                         identity_score=score, score_backend=backend, warnings=tuple(warnings), models=used)


def _auto_mask(crop, face: Face, request: RunRequest) -> np.ndarray:
    """The reference's face oval in the crop (the ControlNet keeps the generated face on it)."""
    points = crop.to_crop(face.landmarks)
    return face_mask(points, (crop.size, crop.size), grow_px=request.mask_params.grow,
                     feather_px=request.mask_params.feather)
