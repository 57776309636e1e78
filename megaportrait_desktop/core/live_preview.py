"""The live preview's worker: renders the newest request on its own thread, drops the ones overtaken.

While a slider moves, requests arrive far faster than a render takes. The worker keeps one slot: a
request that arrives while another renders replaces any request still waiting, so the render that
follows is always of the newest settings. Every finished render is reported, newer than the one before
it: holding back a render because the slider has moved on since would leave the picture frozen for as
long as the hand keeps moving. Only a render asked for before the preview was cleared (``submit(None)``)
is dropped. The app's preview (``ui.preview``) and the benchmark drive this same class.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import MegaPortraitError
from .request import RunRequest

log = logging.getLogger("megaportrait.preview")

Renderer = Callable[[RunRequest], dict[str, Any]]


class LatestOnlyWorker:
    """Calls ``render(request)`` for the newest request; ``on_ready(generation, images, seconds)`` and
    ``on_failed(generation, message)`` are called on the worker's thread."""

    def __init__(self, render: Renderer, on_ready: Callable[[int, dict[str, Any], float], None],
                 on_failed: Callable[[int, str], None] | None = None, name: str = "live-preview") -> None:
        self.render = render
        self._on_ready = on_ready
        self._on_failed = on_failed or (lambda generation, message: None)
        self._wake = threading.Condition()
        self._latest: tuple[int, RunRequest, float] | None = None
        self._generation = 0
        self._cleared = 0  # the generation of the last submit(None)
        self._stopped = False
        #: Requests replaced before they were rendered (for tests and the benchmark).
        self.dropped = 0
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def generation(self) -> int:
        """The newest request's number; a result whose generation is lower is of settings since changed."""
        return self._generation

    def submit(self, request: RunRequest | None) -> int:
        """Ask for the preview of ``request`` (``None``: nothing to show); replaces any request still waiting."""
        with self._wake:
            self._generation += 1
            if self._latest is not None:
                self.dropped += 1
            self._latest = None if request is None else (self._generation, request, time.perf_counter())
            if request is None:
                self._cleared = self._generation
            self._wake.notify()
            return self._generation

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._stopped = True
            self._latest = None
            self._wake.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._latest is None and not self._stopped:
                    self._wake.wait()
                if self._stopped:
                    return
                generation, request, asked = self._latest
                self._latest = None
            try:
                images = self.render(request)
            except MegaPortraitError as exc:
                self._on_failed(generation, str(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - a preview must never take the app down
                log.exception("live preview failed")
                self._on_failed(generation, f"The preview failed: {exc}")
                continue
            if generation > self._cleared:
                self._on_ready(generation, images, time.perf_counter() - asked)


#: What decides the scene (inputs and the crop) and the pair (plus the identity sliders).
SCENE_FIELDS = ("identity", "reference", "face_index", "crop_size")
PAIR_FIELDS = (*SCENE_FIELDS, "identity_params")


class ClassicPreview:
    """A, B, light map, HF-map and shaded crop (uint8) exactly as a classic run makes them: the same engine
    calls, with the scene and the pair kept between calls that do not change them."""

    def __init__(self, scenes: Any = None) -> None:
        self._cache: dict[str, Any] = {}
        #: A :class:`.inputs.SceneCache` shared with the app's runs (the reference read once for both).
        self._scenes = scenes

    def __call__(self, request: RunRequest) -> dict[str, Any]:
        import dataclasses

        from .classic_engine import ClassicEngine

        engine = ClassicEngine()
        request = request.replace(engine="classic")
        scene = self.scene(request)
        pair_key = tuple(getattr(request, f) for f in PAIR_FIELDS)
        if self._cache.get("pair_key") != pair_key:
            self._cache["pair"] = engine.identity_pair(scene, _quiet())
            self._cache["pair_key"] = pair_key
        pair = self._cache["pair"]
        return stage_images(pair, engine.shading(dataclasses.replace(scene, request=request), pair, _quiet()))

    def scene(self, request: RunRequest):
        """The scene for ``request`` (read again only when the inputs or the crop size change)."""
        import dataclasses

        from .inputs import load_scene

        key = tuple(getattr(request, f) for f in SCENE_FIELDS)
        if self._cache.get("scene_key") != key:
            self._cache.clear()
            self._cache["scene"], _ = self._scenes.load(request, _quiet()) if self._scenes else \
                load_scene(request, _quiet())
            self._cache["scene_key"] = key
        return dataclasses.replace(self._cache["scene"], request=request)


def stage_images(pair, shading) -> dict[str, Any]:
    """The live preview's images (uint8), by stage name."""
    return {**pair_images(pair), **shading_images(shading)}


def pair_images(pair) -> dict[str, Any]:
    """A and B (uint8), by stage name: a preview keeps them while only shading sliders move."""
    from .imaging import to_uint8
    from .stages import Stage

    return {Stage.A: to_uint8(pair.a), Stage.B: to_uint8(pair.b)}


def shading_images(shading) -> dict[str, Any]:
    """The light map, the HF-map (on mid-grey) and the shaded crop (uint8), by stage name."""
    import numpy as np

    from .imaging import to_uint8
    from .stages import Stage

    # to_uint8 saturates, so the HF-map needs no clip of its own
    return {Stage.LIGHT_MAP: to_uint8(shading.light), Stage.HF_MAP: to_uint8(shading.hf + np.float32(0.5)),
            Stage.SHADED: to_uint8(shading.shaded)}


def _quiet():
    from .progress import Reporter

    return Reporter()
