"""Project errors: one typed error with a plain message."""

from __future__ import annotations

from ..core.errors import ErrorKind, MegaPortraitError


class ProjectError(MegaPortraitError):
    """The project cannot be opened, read or written as asked; the message says what to do."""

    kind = ErrorKind.PROJECT


class ProjectBusyError(ProjectError):
    """Another process (or window) has the project open for writing; ``holder`` says who, when known."""

    def __init__(self, message: str, holder: object | None = None) -> None:
        super().__init__(message)
        self.holder = holder
