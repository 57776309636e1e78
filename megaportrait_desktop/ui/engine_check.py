"""Warn as soon as the diffusion engine is chosen without its models (not only when Run fails).

The check reads each diffusion role's state (files on disk, the Hugging Face cache) on a worker
thread; the warning appears under the engine choice with a link to the model manager.
"""

from __future__ import annotations

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel

from .workers import run_in_background


def missing_diffusion_models() -> list[str]:
    """The titles of the diffusion roles that are not installed (reads the disk: run it off the GUI thread)."""
    from ..core.model_settings import ROLES, load_settings
    from ..core.modelstore.manager import role_state

    settings = load_settings()
    return [s.title for s in (role_state(role, settings) for role in ROLES) if s.state != "installed"]


class EngineCheck(QObject):
    """Shows ``note`` (a label under the engine choice) while the diffusion engine lacks models."""

    def __init__(self, window, note: QLabel) -> None:
        super().__init__(window)
        self.window = window
        self.note = note
        self.missing: list[str] | None = None  # after a check: what the last one found
        self._engine = ""
        self._worker = None
        note.setWordWrap(True)
        note.setObjectName("engineNote")
        note.setStyleSheet("QLabel#engineNote { color: #f0ad4e; }")
        note.linkActivated.connect(lambda _: window.show_model_settings())
        note.hide()
        window.session.request_changed.connect(self._on_session_request_changed)

    def check(self) -> None:
        """Look again (after the model manager changed something, or the engine changed)."""
        if self.window.session.get("engine") != "diffusion":
            self.note.hide()
            return
        self._worker = run_in_background(missing_diffusion_models, on_done=self._on_checked,
                                         on_error=lambda exc: self._on_checked([str(exc)]))

    def _on_session_request_changed(self) -> None:
        engine = self.window.session.get("engine")
        if engine != self._engine:
            self._engine = engine
            self.check()

    def _on_checked(self, missing: list[str]) -> None:
        self.missing = missing
        if not missing or self.window.session.get("engine") != "diffusion":
            self.note.hide()
            return
        self.note.setText(f"⚠ The diffusion engine needs models that are not installed yet: {', '.join(missing)}. "
                          'Install them in <a href="models">Models → Model Manager…</a>; the classic engine works '
                          "meanwhile.")
        self.note.show()
        self.window.statusBar().showMessage("The diffusion engine needs models: Models → Model Manager.", 10_000)
