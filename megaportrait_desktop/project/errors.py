"""Project errors: one typed error with a plain message."""

from __future__ import annotations

from ..core.errors import MegaPortraitError


class ProjectError(MegaPortraitError):
    """The project cannot be opened, read or written as asked; the message says what to do."""
