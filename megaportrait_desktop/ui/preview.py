"""The live preview: the classic engine's pair and shading for the session's request, as a slider moves.

It calls the same engine code a run does (:func:`core.pipeline.load_scene`, then
:class:`core.classic_engine.ClassicEngine`'s identity pair and shading), so the shaded crop it shows
is the one a classic run computes. The work runs on its own thread; only the newest request is
computed (a request that was overtaken while waiting is dropped), and a result is shown only if no
newer request came in meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot

from ..core.classic_engine import ClassicEngine
from ..core.engine import Pair, Scene
from ..core.errors import MegaPortraitError
from ..core.imaging import to_uint8
from ..core.pipeline import SCENE_FIELDS, SceneCache
from ..core.progress import Reporter
from ..core.request import RunRequest
from ..core.stages import Stage

log = logging.getLogger("megaportrait.ui")

#: What decides the pair: the scene (inputs and the crop) and the identity sliders.
PAIR_FIELDS = (*SCENE_FIELDS, "identity_params")


def preview_stages(request: RunRequest, cache: dict, scenes: SceneCache | None = None) -> dict[str, np.ndarray]:
    """A, B, light map, HF-map and shaded crop (uint8) for ``request``, exactly as a classic run makes
    them; ``cache`` keeps the scene and the pair between calls that do not change them, ``scenes`` the
    scene shared with the runs."""
    engine = ClassicEngine()
    request = request.replace(engine="classic")
    scene_key = tuple(getattr(request, f) for f in SCENE_FIELDS)
    pair_key = tuple(getattr(request, f) for f in PAIR_FIELDS)
    if cache.get("scene_key") != scene_key:
        from ..core.pipeline import load_scene

        cache.clear()
        cache["scene"], _ = scenes.load(request, Reporter()) if scenes else load_scene(request, Reporter())
        cache["scene_key"] = scene_key
    scene: Scene = dataclasses.replace(cache["scene"], request=request)
    if cache.get("pair_key") != pair_key:
        cache["pair"] = engine.identity_pair(scene, Reporter())
        cache["pair_key"] = pair_key
    pair: Pair = cache["pair"]
    shading = engine.shading(scene, pair, Reporter())
    return {Stage.A: to_uint8(pair.a), Stage.B: to_uint8(pair.b), Stage.LIGHT_MAP: to_uint8(shading.light),
            Stage.HF_MAP: to_uint8(np.clip(shading.hf + 0.5, 0, 1)), Stage.SHADED: to_uint8(shading.shaded)}


class LivePreview(QObject):
    """Submit requests from the GUI thread; :attr:`ready` brings the stages of the newest one back."""

    ready = Signal(int, dict)  # generation, stage images
    failed = Signal(str)
    _wake = Signal()

    def __init__(self, scenes: SceneCache | None = None) -> None:
        super().__init__()
        self.scenes = scenes
        self._lock = threading.Lock()
        self._latest: tuple[int, RunRequest] | None = None
        self._generation = 0
        self._cache: dict = {}
        self._thread = QThread()
        self._thread.setObjectName("live-preview")
        self.moveToThread(self._thread)
        self._wake.connect(self._drain)
        self._thread.start()

    @property
    def generation(self) -> int:
        """The newest request's number; a result of an older one is never shown."""
        return self._generation

    def submit(self, request: RunRequest | None) -> int:
        """Ask for the preview of ``request`` (replacing any request not started yet)."""
        with self._lock:
            self._generation += 1
            self._latest = None if request is None else (self._generation, request)
            generation = self._generation
        if request is not None:
            self._wake.emit()
        return generation

    def shutdown(self) -> None:
        with self._lock:
            self._latest = None
        self._thread.quit()
        self._thread.wait(10_000)

    @Slot()
    def _drain(self) -> None:
        while True:
            with self._lock:
                job, self._latest = self._latest, None
            if job is None:
                return
            generation, request = job
            try:
                stages = preview_stages(request, self._cache, self.scenes)
            except MegaPortraitError as exc:
                self._cache.clear()
                self.failed.emit(str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a preview must never take the app down
                log.exception("live preview failed")
                self._cache.clear()
                self.failed.emit(f"The preview failed: {exc}")
                continue
            if generation == self._generation:  # a newer request is on its way: this one is stale
                self.ready.emit(generation, stages)
