"""Loading and saving the reference's mask for the window, with the full-resolution work off the GUI thread.

A 24-megapixel mask is 24 MB to decode, to turn into the canvas overlay (96 MB of RGBA) and to encode as
PNG: each would stall the window for a tenth of a second or more, so each runs on a worker thread and
the window only swaps in what is ready.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QObject

from ..core.brush import MaskPainter
from ..core.imaging import load_image
from .canvas import overlay_image
from .errors import show_error
from .workers import run_in_background


def read_masks(project, paths: list[str], colour: tuple[int, int, int]) -> tuple[MaskPainter, object]:
    """The painter for the current mask (``paths[1]``, automatic mask ``paths[0]``) and its overlay image in
    ``colour``."""
    auto, current = (load_image(project.path_of(p)).pixels[..., 0] for p in paths)
    painter = MaskPainter(current, auto)
    return painter, overlay_image(painter.mask, colour)


class MaskActions(QObject):
    """The mask editor's load and save for ``window`` (a :class:`.main_window.MainWindow`)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.saving = False
        window.mask_editor.save_requested.connect(lambda: self.save())

    def load(self) -> None:
        """Show the session's mask version (the automatic one when it names none) in the mask editor."""
        w = self.window
        reference_id = w.session.reference_id
        masks = w.project.masks(reference_id) if w.project and reference_id else []
        if not masks:
            w.mask_editor.clear()
            w.update_undo_actions()
            return
        current = w.session.mask_path or masks[-1].path
        colour = w.canvas.overlay_colour

        def loaded(ready) -> None:
            if w.session.reference_id == reference_id:
                painter, overlay = ready
                # a colour picked while it loaded: the canvas makes the overlay again in that one
                w.mask_editor.load_painter(painter, overlay if colour == w.canvas.overlay_colour else None)
                w.update_overlay()
                w.update_undo_actions()
        w.track(run_in_background(read_masks, w.project, [masks[0].path, current], colour, on_done=loaded,
                                  on_error=lambda exc: show_error(w, "Mask", str(exc))))

    def save(self, then: Callable[[], None] | None = None, failed: Callable[[], None] | None = None) -> bool:
        """Store the edited mask as a new version on a worker thread; ``then`` runs once it is saved (and
        the session uses it), ``failed`` if it could not be. ``False`` when there is nothing to save."""
        w = self.window
        editor = w.mask_editor
        painter = editor.painter
        if not w.session.reference_id or painter is None or w.project is None:
            return False
        reference_id, edits, snapshot = w.session.reference_id, editor.edits, painter.mask.copy()
        project = w.project
        self.saving = True
        w.statusBar().showMessage("Saving the mask…")

        def saved(version: int) -> None:
            self.saving = False
            if w.project is not project:
                return
            if editor.edits == edits:  # nothing painted meanwhile
                editor.dirty = False
            if w.session.reference_id == reference_id:
                w.session.refresh_mask()
            w.statusBar().showMessage(f"Mask saved (version {version}).", 4000)
            if then is not None:
                then()

        def not_saved(exc: Exception) -> None:
            self.saving = False
            w.statusBar().clearMessage()
            if failed is not None:
                failed()
            show_error(w, "Save mask", str(exc))
        w.track(run_in_background(project.save_mask, reference_id, snapshot, on_done=saved, on_error=not_saved))
        return True

    def save_now(self) -> int | None:
        """Save at once, on this thread (quitting: nothing the user painted may be lost); returns the version."""
        w = self.window
        painter = w.mask_editor.painter
        if not w.session.reference_id or painter is None or w.project is None:
            return None
        version = w.project.save_mask(w.session.reference_id, np.asarray(painter.mask))
        w.mask_editor.dirty = False
        w.session.refresh_mask()
        w.statusBar().showMessage(f"Mask saved (version {version}).", 4000)
        return version
