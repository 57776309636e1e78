"""Control images for the ControlNets, from controlnet-aux preprocessors.

Face geometry of the reference crop: ``mediapipe_face`` (the MediaPipe-face ControlNet's own
annotator), ``canny`` and ``lineart_standard`` need no weights; ``lineart`` and ``softedge`` (HED)
need their annotator weights, looked up in ``<models>/annotators`` (the layout of the
``lllyasviel/Annotators`` repository) and never downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

from ..errors import ModelMissingError, RequestError

FACE_CONTROLS = ("mediapipe_face", "canny", "lineart_standard", "lineart", "softedge")
_WEIGHTED = {"lineart": ("controlnet_aux.lineart", "LineartDetector", "sk_model.pth"),
             "softedge": ("controlnet_aux.hed", "HEDdetector", "ControlNetHED.pth")}


def face_geometry(kind: str, rgb: np.ndarray, models_dir: Path | None = None) -> np.ndarray:
    """The face-geometry control image of a uint8 RGB crop, same size, uint8 RGB.

    Raises
    ------
    RequestError
        For an unknown kind.
    ModelMissingError
        For a weight-based annotator whose weights are not installed.
    """
    size = rgb.shape[1], rgb.shape[0]
    # Annotators were tuned on 512-pixel images: run them at 512 at least, then fit the crop.
    resolution = max(512, max(size))
    if kind == "mediapipe_face":
        from controlnet_aux.mediapipe_face import MediapipeFaceDetector

        out = MediapipeFaceDetector()(rgb, detect_resolution=resolution, image_resolution=resolution,
                                      output_type="np")
    elif kind == "canny":
        from controlnet_aux.canny import CannyDetector

        out = CannyDetector()(rgb, low_threshold=100, high_threshold=200, detect_resolution=resolution,
                              image_resolution=resolution, output_type="np")
    elif kind == "lineart_standard":
        from controlnet_aux.lineart_standard import LineartStandardDetector

        # This one returns the input's size itself (it has no image_resolution).
        out = LineartStandardDetector()(rgb, detect_resolution=resolution, output_type="np")
    elif kind in _WEIGHTED:
        out = _weighted(kind, rgb, resolution, models_dir)
    else:
        raise RequestError(f"Unknown face control {kind!r}; choose one of {', '.join(FACE_CONTROLS)}.")
    out = np.asarray(out)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    return cv2.resize(out.astype(np.uint8), size, interpolation=cv2.INTER_AREA)


def annotators_dir(models_dir: Path | None) -> Path:
    from ..paths import models_dir as default_models_dir

    return (models_dir or default_models_dir()) / "annotators"


def _weighted(kind: str, rgb: np.ndarray, resolution: int, models_dir: Path | None) -> np.ndarray:
    import importlib

    module, cls_name, weight = _WEIGHTED[kind]
    folder = annotators_dir(models_dir)
    if not (folder / weight).is_file():
        raise ModelMissingError(f"The {kind} annotator needs {weight} in {folder} (from the "
                                "'lllyasviel/Annotators' pack); install it, or choose mediapipe_face, canny or "
                                "lineart_standard as the face control.")
    detector = getattr(importlib.import_module(module), cls_name).from_pretrained(str(folder))
    return detector(rgb, detect_resolution=resolution, image_resolution=resolution, output_type="np")


def inpaint_condition(image: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The inpaint ControlNet's control image: the image with the region to repaint set to −1.

    float32 ``(H, W, 3)`` in ``[-1, 1]`` except the region (``region``: ``(H, W)``, repainted where > 0.5),
    on the image's device; the pipeline takes it as a tensor.
    """
    cond = image.clone()
    cond[region > 0.5] = -1.0
    return cond
