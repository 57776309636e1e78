"""The live preview's side of the window: requests from the session, images to the stage view, the mode in
the panel, and a Final render of the slider's stage when a slider is released under a diffusion draft."""

from __future__ import annotations

from PySide6.QtCore import QObject
from superqt.utils import qthrottled

from .jobs import diffusion_engine
from .preview import DRAFT, LivePreview


class LiveActions(QObject):
    """Owns the :class:`LivePreview` of a ``MainWindow``."""

    def __init__(self, window, allow_cpu_draft: bool = False) -> None:
        super().__init__(window)
        self.window = window
        worker = window.worker
        self.preview = LivePreview(lambda: diffusion_engine(worker.cache), worker.gpu_lock, allow_cpu_draft)
        self.mode = ""
        self.shown = 0  # the generation of the images on screen
        # At most one request every 40 ms while a slider moves; the preview renders only the newest.
        window.session.request_changed.connect(qthrottled(self._on_session_request_changed, timeout=40,
                                                          leading=True))
        self.preview.ready.connect(self._on_preview_ready)
        self.preview.mode_changed.connect(self._on_preview_mode_changed)
        self.preview.failed.connect(lambda message: window.panel.preview_mode.setText(f"Live preview: {message}"))
        window.panel.slider_released.connect(self._on_panel_slider_released)

    def _on_session_request_changed(self) -> None:
        w = self.window
        self.preview.submit(w.session.request if w.project is not None else None)

    def _on_preview_ready(self, generation: int, stages: dict) -> None:
        # Renders finish in the order they were asked for, so each is newer than the one shown: show it even
        # while the slider has moved on (the next render is already of the newest value).
        if generation > self.shown:
            self.shown = generation
            self.window.stage_view.update_images(stages)

    def _on_preview_mode_changed(self, mode: str) -> None:
        self.mode = mode
        panel = self.window.panel
        panel.preview_mode.setText(f"Live preview: {mode}")
        panel.final_on_release.setVisible(mode == DRAFT)

    def _on_panel_slider_released(self, stage: str) -> None:
        """Under a diffusion draft, letting go of a slider renders its stage at Final quality (not recorded)."""
        w = self.window
        if self.mode == DRAFT and w.panel.final_on_release.isChecked() and not w.worker.busy:
            w.session.set("diffusion.quality", "final")
            w.run_pipeline(stage)

    def models_changed(self) -> None:
        self.preview.recheck()

    def shutdown(self) -> None:
        self.preview.shutdown()
