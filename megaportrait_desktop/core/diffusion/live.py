"""The diffusion result live under the sliders: the stage a slider belongs to, re-rendered at draft quality.

A shading slider re-renders the Shading stage only (the pair is kept); an identity slider the pair
and then the Shading. It uses the diffusion engine the app's GPU worker holds (its loaded models, its
fast path with the draft steps captured), taking turns with the worker's jobs through ``lock``.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable
from typing import Any

from ..live_preview import ClassicPreview, pair_images, shading_images
from ..progress import Reporter
from ..request import RunRequest
from .engine import DiffusionEngine

#: The settings the pair depends on; a change of anything else (shading, harmonisation) keeps the pair.
_NOT_PAIR = ("shading", "harmonize", "mask", "mask_params")


class DraftPreview:
    """Renders ``request`` at draft quality with the engine ``engine_source()`` returns."""

    def __init__(self, engine_source: Callable[[], DiffusionEngine], lock: threading.Lock | None = None) -> None:
        self.engine_source = engine_source
        self.lock = lock or threading.Lock()
        self._scenes = ClassicPreview()  # reads the inputs and crops, as a run does
        self._pair: tuple[str, Any, dict[str, Any]] | None = None  # its settings, the pair, A and B as uint8
        #: What the last call re-rendered: ``"pair+shading"`` or ``"shading"``.
        self.rendered = ""

    def __call__(self, request: RunRequest) -> dict[str, Any]:
        request = request.replace(diffusion=dataclasses.replace(request.diffusion, quality="draft"))
        scene = self._scenes.scene(request)
        with self.lock:  # the GPU worker's jobs and this preview take turns on the models
            engine = self.engine_source()
            pinned, _ = engine.prepare(scene, Reporter())
            scene = dataclasses.replace(scene, request=pinned)
            key = json.dumps({k: v for k, v in pinned.to_dict().items() if k not in _NOT_PAIR}, sort_keys=True)
            if self._pair is None or self._pair[0] != key:
                pair = engine.identity_pair(scene, Reporter())
                self._pair = (key, pair, pair_images(pair))
                self.rendered = "pair+shading"
            else:
                self.rendered = "shading"
            _, pair, images = self._pair
            return {**images, **shading_images(engine.shading(scene, pair, Reporter()))}
