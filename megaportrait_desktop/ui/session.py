"""The session: the one current run request and selection, between the widgets and the run.

Widgets write here and nowhere else (:func:`bind` ties a control to a field, both ways); the run,
the live preview and the stored History row all derive from :attr:`Session.request`, so what the
preview shows is what a run computes, and Recall is ``session.recall(output)``: the stored request
(models, LoRA version and mask version included) becomes the current one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSignalBlocker, Signal
from PySide6.QtWidgets import QAbstractSlider, QComboBox, QWidget

from ..core.request import DiffusionParams, RunRequest
from ..project import Output, Project, ProjectError

#: The request's fields that are not inputs (the inputs come from the selection).
SETTINGS = ("engine", "crop_size", "seed", "steps", "identity_params", "shading", "mask_params", "harmonize",
            "diffusion")
#: Fields whose change needs a new identity pair for the live preview (the rest only re-shade it).
PAIR_FIELDS = ("identity", "reference", "face_index", "crop_size", "identity_params")


def default_settings() -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(RunRequest)}
    return {name: fields[name].default if fields[name].default is not dataclasses.MISSING
            else fields[name].default_factory() for name in SETTINGS}


class Session(QObject):
    """Holds the project, the selection (identity, reference, mask version) and every run setting."""

    request_changed = Signal()    # anything that changes :attr:`request`
    selection_changed = Signal()  # identity or reference

    def __init__(self) -> None:
        super().__init__()
        self.project: Project | None = None
        self.identity_id = 0
        self.reference_id = 0
        #: The user mask file (a project path) the run uses; ``None`` = the reference's automatic mask.
        self.mask_path: str | None = None
        self._settings = default_settings()
        #: A recalled request's inputs (its photo set and reference file), until the selection changes.
        self._recalled: RunRequest | None = None

    # ------------------------------------------------------------------ selection

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.identity_id = self.reference_id = 0
        self.mask_path = None
        self._recalled = None
        self.selection_changed.emit()
        self.request_changed.emit()

    def select(self, identity_id: int | None = None, reference_id: int | None = None) -> None:
        changed = False
        if identity_id is not None and identity_id != self.identity_id:
            self.identity_id, changed = identity_id, True
        if reference_id is not None and reference_id != self.reference_id:
            self.reference_id, changed = reference_id, True
            self.mask_path = self._current_user_mask()
        if changed:
            self._recalled = None
            self.selection_changed.emit()
            self.request_changed.emit()

    def set_mask(self, path: str | None) -> None:
        """The mask version the run uses (a saved user mask's path, or ``None`` for the automatic one)."""
        if path != self.mask_path:
            self.mask_path = path
            self.request_changed.emit()

    def refresh_mask(self) -> None:
        """After the user's mask was saved or reset: the reference's newest version."""
        self.set_mask(self._current_user_mask())

    # ------------------------------------------------------------------ settings

    def get(self, path: str) -> Any:
        """A setting by dotted name, e.g. ``"shading.light_cutoff"``."""
        head, _, rest = path.partition(".")
        value = self._settings[head]
        return getattr(value, rest) if rest else value

    def set(self, path: str, value: Any) -> None:
        """Change one setting; emits :attr:`request_changed` only when the value changes."""
        head, _, rest = path.partition(".")
        current = self._settings[head]
        new = dataclasses.replace(current, **{rest: value}) if rest else value
        if new != current:
            self._settings[head] = new
            self.request_changed.emit()

    def settings_values(self) -> dict[str, Any]:
        """Every setting (engine, sizes, sliders, diffusion), as :class:`RunRequest` keyword arguments."""
        return dict(self._settings)

    def default(self, path: str) -> Any:
        head, _, rest = path.partition(".")
        value = default_settings()[head]
        return getattr(value, rest) if rest else value

    def reset(self, path: str | None = None) -> None:
        """One setting (or, with none named, every setting) back to its default."""
        if path is None:
            self._settings = default_settings()
            self.request_changed.emit()
        else:
            self.set(path, self.default(path))

    def use_current_models(self) -> None:
        """Drop the models a recalled request was pinned to: the next run uses today's models and LoRA."""
        d = self._settings["diffusion"]
        self._settings["diffusion"] = dataclasses.replace(
            d, model_sha256=None, lora=None, **{role: None for role in d.model_overrides()})
        self.request_changed.emit()

    # ------------------------------------------------------------------ the request

    @property
    def request(self) -> RunRequest | None:
        """The whole run request for the current selection and settings; ``None`` without both inputs."""
        if self.project is None or not self.identity_id or not self.reference_id:
            return None
        settings = dict(self._settings)
        if self._recalled is not None:
            inputs = {"identity": self._recalled.identity, "reference": self._recalled.reference,
                      "face_index": self._recalled.face_index}
        else:
            photos = self.project.identity_photos(self.identity_id)
            if not photos:
                return None
            ref = self.project.reference(self.reference_id)
            inputs = {"identity": tuple(str(self.project.path_of(p.path)) for p in photos),
                      "reference": str(self.project.path_of(ref.path)), "face_index": ref.chosen_face}
            settings["diffusion"] = self._identity_diffusion(settings["diffusion"])
        mask = str(self.project.path_of(self.mask_path)) if self.mask_path else None
        return RunRequest(**inputs, mask=mask, **settings)

    def recall(self, output: Output) -> list[str]:
        """Make an output's stored request the current one: its settings, models, LoRA version, mask
        version, photo set and reference. Returns notes for the user (e.g. a model that is gone).

        Raises
        ------
        MegaPortraitError
            When the stored request cannot be read (written by a newer version, malformed).
        """
        stored = RunRequest.from_dict(self.project.resolve_request(output.request))
        self._settings = {name: getattr(stored, name) for name in SETTINGS}
        self.identity_id = output.identity_id or 0
        self.reference_id = output.reference_id or 0
        self._recalled = stored
        self.mask_path = self._project_path(stored.mask)
        self.selection_changed.emit()
        self.request_changed.emit()
        return missing_models(stored)

    # ------------------------------------------------------------------ helpers

    def _identity_diffusion(self, d: DiffusionParams) -> DiffusionParams:
        """A fresh request uses the identity's own LoRA and trigger token (a recalled one keeps its own)."""
        if d.model_sha256 is not None:
            return d  # pinned by a recall: keep exactly what it names
        try:
            identity = self.project.identity(self.identity_id)
        except ProjectError:
            return d
        lora = str(self.project.path_of(identity.lora_path)) if identity.lora_path else None
        return dataclasses.replace(d, lora=lora, prompt=f"a photo of {identity.trigger_token} person")

    def _current_user_mask(self) -> str | None:
        if self.project is None or not self.reference_id:
            return None
        mask = self.project.current_mask(self.reference_id)
        return mask.path if mask is not None and mask.source == "user" else None

    def _project_path(self, path: str | None) -> str | None:
        """A stored absolute path inside the project, as the project-relative path the masks table uses."""
        if path is None or self.project is None:
            return None
        try:
            return Path(path).resolve().relative_to(self.project.root.resolve()).as_posix()
        except ValueError:
            return None


def missing_models(request: RunRequest) -> list[str]:
    """What a recalled request names that is no longer on disk, one line each."""
    d = request.diffusion
    if request.engine != "diffusion":
        return []
    named = {role: source for role, source in d.model_overrides().items() if source}
    if d.lora:
        named["lora"] = d.lora
    return [f"The {role.replace('_', ' ')} this output was made with is gone ({source}); install it again or "
            "choose Use current models." for role, source in named.items()
            if ("/" in source or "\\" in source) and not Path(source).exists()]


def bind(session: Session, path: str, widget: QWidget) -> None:
    """Tie a control to a setting both ways: the control writes the session; the session's value is
    shown without echoing back (``QSignalBlocker``). Double-clicking a slider resets it to its default."""
    if isinstance(widget, QComboBox):
        widget.currentIndexChanged.connect(lambda _: session.set(path, widget.currentData()))

        def show() -> None:
            index = widget.findData(session.get(path))
            if index >= 0 and index != widget.currentIndex():
                with QSignalBlocker(widget):
                    widget.setCurrentIndex(index)
    else:
        digits = 4 if hasattr(widget, "setDecimals") else None
        widget.valueChanged.connect(lambda v: session.set(path, round(float(v), digits) if digits else int(v)))

        def show() -> None:
            value = session.get(path)
            if value != widget.value():
                with QSignalBlocker(widget):
                    widget.setValue(value)
        widget.setProperty("resetsTo", session.default(path))
        _reset_on_double_click(widget, lambda: session.reset(path))
    session.request_changed.connect(show)
    show()


class _ResetOnDoubleClick(QObject):
    def __init__(self, parent: QWidget, reset) -> None:
        super().__init__(parent)
        self._reset = reset

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.MouseButtonDblClick:
            self._reset()
            return True
        return False


def _reset_on_double_click(widget: QWidget, reset) -> None:
    # superqt's labelled slider is a container (itself a QAbstractSlider): the slider inside gets the
    # clicks (its number box keeps double-click for selecting text).
    targets = widget.findChildren(QAbstractSlider) or [widget]
    reset_filter = _ResetOnDoubleClick(widget, reset)
    widget.reset_filter = reset_filter  # a Python reference: the filter (and its override) must outlive this call
    for target in targets:
        target.installEventFilter(reset_filter)
    widget.setToolTip(f"{widget.toolTip()} (double-click: back to {widget.property('resetsTo')})".strip())

