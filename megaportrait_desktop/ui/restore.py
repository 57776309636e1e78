"""What the window looked like, back on reopen: the dock layout, and per project the selected identity and
reference, the output shown, the stage tab and History's sort and view; the brush and mask overlay
settings, which follow the user rather than the project.

Kept in the UI settings (``ui.ini``), not in the project: a project travels to other machines and
other people, and where one person left the window is nobody else's business. Projects are told
apart by their folder (a project moved elsewhere simply opens as new).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings

from ..project import Project, ProjectError
from .recent import settings
from .stage_view import REFERENCE_FULL, STAGE_TABS

#: The brush and overlay settings kept between sessions: setting name → the mask editor's widget.
BRUSH_WIDGETS = {"size": "size", "hardness": "hardness", "opacity": "opacity", "feather": "feather_amount",
                 "overlay": "overlay_opacity"}


def project_key(root: str | Path) -> str:
    """The settings group of one project folder."""
    return "projects/" + hashlib.sha1(str(Path(root).resolve()).encode()).hexdigest()[:16]


def restore_layout(window) -> None:
    s = settings()
    geometry, state = s.value("geometry"), s.value("windowState")
    if geometry is not None:
        window.restoreGeometry(geometry)
    if state is not None:
        window.restoreState(state)


def save_layout(window) -> None:
    s = settings()
    s.setValue("geometry", window.saveGeometry())
    s.setValue("windowState", window.saveState())
    s.sync()


def save_view(window, project: Project | None) -> None:
    """Remember ``project``'s view (the one being closed) and the brush settings."""
    s = settings()
    _save_brush(window, s)
    if project is not None:
        s.beginGroup(project_key(project.root))
        s.setValue("identity", window.session.identity_id)
        s.setValue("reference", window.session.reference_id)
        s.setValue("output", window.history_actions.shown_output)
        s.setValue("stage", window.stage_view.current())
        s.setValue("sort", window.history.sort.currentData())
        s.setValue("grid", window.history.grid.isChecked())
        s.setValue("thumb", window.history.thumb_size.value())
        s.endGroup()
    s.sync()


def restore_view(window, project: Project) -> None:
    """Put ``project``'s view back as it was left (what no longer exists is skipped)."""
    s = settings()
    s.beginGroup(project_key(project.root))
    values = {key: s.value(key) for key in s.childKeys()}
    s.endGroup()
    history = window.history
    if values.get("sort") is not None and history.sort.findData(values["sort"]) >= 0:
        history.sort.setCurrentIndex(history.sort.findData(values["sort"]))
    if values.get("grid") is not None:
        history.grid.setChecked(_bool(values["grid"]))
    if values.get("thumb") is not None:
        history.thumb_size.setValue(_int(values["thumb"], history.thumb_size.value()))
    identity, reference = _int(values.get("identity")), _int(values.get("reference"))
    if identity:
        window.identities.select(identity)
    if reference:
        window.references.select(reference)
    stage = values.get("stage")
    output = _int(values.get("output"))
    if output and _exists(project, output):
        history.select(output)
        window.history_actions.show(output, then=lambda: _show_stage(window, stage))
    else:
        _show_stage(window, stage)


def restore_brush(window) -> None:
    """The brush and overlay settings of the last session."""
    s = settings()
    s.beginGroup("brush")
    editor = window.mask_editor
    for key, name in BRUSH_WIDGETS.items():
        value = s.value(key)
        if value is not None:
            widget = getattr(editor, name)
            with contextlib.suppress(TypeError, ValueError):
                widget.setValue(type(widget.value())(float(value)))
    if s.value("eraser") is not None:
        (editor.eraser_button if _bool(s.value("eraser")) else editor.brush_button).setChecked(True)
    if s.value("show") is not None:
        editor.show_overlay.setChecked(_bool(s.value("show")))
    colour = s.value("colour")
    if isinstance(colour, str) and colour.count(",") == 2:
        with contextlib.suppress(ValueError):
            editor.set_overlay_colour(tuple(max(0, min(255, int(c))) for c in colour.split(",")))
    s.endGroup()


def _save_brush(window, s: QSettings) -> None:
    editor = window.mask_editor
    s.beginGroup("brush")
    for key, name in BRUSH_WIDGETS.items():
        s.setValue(key, getattr(editor, name).value())
    s.setValue("eraser", editor.eraser_button.isChecked())
    s.setValue("show", editor.show_overlay.isChecked())
    s.setValue("colour", ",".join(str(c) for c in editor.canvas.overlay_colour))
    s.endGroup()


def _show_stage(window, stage) -> None:
    if stage in {key for _, key in STAGE_TABS} and stage != REFERENCE_FULL:
        window.stage_view.show_stage(stage)


def _exists(project: Project, output_id: int) -> bool:
    try:
        project.output(output_id)
    except ProjectError:
        return False
    return True


def _int(value, default: int = 0) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return default


def _bool(value) -> bool:
    return value is True or str(value).lower() in ("true", "1")
