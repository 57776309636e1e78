"""The live preview in the window: what a run would make of the session's request, as a slider moves.

The classic engine's pair and shading (the same engine calls a run makes, so the shaded crop it
shows is the one a classic run computes); with the diffusion engine on a CUDA GPU and a speed LoRA
installed, the diffusion result itself at draft quality (:class:`core.diffusion.live.DraftPreview`),
taking turns with the GPU worker's jobs. The newest request only is rendered, off the GUI thread
(:class:`core.live_preview.LatestOnlyWorker`); results come back through :attr:`LivePreview.ready`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from ..core.live_preview import ClassicPreview, LatestOnlyWorker
from ..core.request import RunRequest

CLASSIC = "classic"
DRAFT = "diffusion draft"


class LivePreview(QObject):
    """Submit requests from the GUI thread; :attr:`ready` brings the stages of the newest one back."""

    ready = Signal(int, dict)   # generation, stage images
    failed = Signal(str)
    #: Which preview runs and why ("diffusion draft" or "classic: <reason>").
    mode_changed = Signal(str)
    #: Seconds from a request to its images, for the newest rendered one.
    latency = Signal(float)

    def __init__(self, engine_source: Callable | None = None, gpu_lock: threading.Lock | None = None,
                 allow_cpu_draft: bool = False) -> None:
        super().__init__()
        self._engine_source = engine_source
        self._gpu_lock = gpu_lock
        self._allow_cpu_draft = allow_cpu_draft
        self._classic = ClassicPreview()
        self._draft = None
        self._draft_checked = False
        self._why_not: str | None = None
        self._mode = ""
        self._worker = LatestOnlyWorker(self._render, self._on_ready,
                                        lambda generation, message: self.failed.emit(message))

    @property
    def generation(self) -> int:
        return self._worker.generation

    @property
    def dropped(self) -> int:
        """Requests overtaken before they were rendered."""
        return self._worker.dropped

    def submit(self, request: RunRequest | None) -> int:
        """Ask for the preview of ``request`` (replacing any request not started yet)."""
        return self._worker.submit(request)

    def recheck(self) -> None:
        """Look again at whether drafts can run live (the models changed)."""
        self._draft_checked = False
        self._draft = None

    def shutdown(self) -> None:
        self._worker.shutdown()

    # ------------------------------------------------------------------ the worker's thread

    def _render(self, request: RunRequest) -> dict:
        if request.engine == "diffusion" and self._draft_preview() is not None:
            return self._draft(request)
        self._set_mode(CLASSIC if request.engine == "classic" else f"{CLASSIC}: {self._why_not}")
        return self._classic(request)

    def _draft_preview(self):
        """The draft renderer when this machine can run it live, else ``None`` (with the reason kept)."""
        if not self._draft_checked:
            self._draft_checked = True
            self._why_not = draft_unavailable(self._allow_cpu_draft)
            if self._why_not is None and self._engine_source is not None:
                from ..core.diffusion.live import DraftPreview

                self._draft = DraftPreview(self._engine_source, self._gpu_lock)
            elif self._why_not is None:
                self._why_not = "no diffusion engine in this window"
        if self._draft is not None:
            self._set_mode(DRAFT)
        return self._draft

    def _set_mode(self, mode: str) -> None:
        if mode != self._mode:
            self._mode = mode
            self.mode_changed.emit(mode)

    def _on_ready(self, generation: int, images: dict, seconds: float) -> None:
        self.latency.emit(seconds)
        self.ready.emit(generation, images)


def draft_unavailable(allow_cpu: bool = False) -> str | None:
    """Why the diffusion result cannot follow the sliders here (``None``: it can)."""
    from ..core.model_settings import load_settings

    try:
        import torch
    except ImportError:
        return "this installation has no diffusion engine"
    if not allow_cpu and not torch.cuda.is_available():
        return "no CUDA GPU (a draft takes seconds on a CPU)"
    if "speed_lora" not in load_settings().models:
        return "no speed LoRA installed (Models → Model Manager)"
    return None
