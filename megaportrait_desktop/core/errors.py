"""The typed errors that core raises: each carries a plain message that says what to do."""

from __future__ import annotations


class MegaPortraitError(Exception):
    """Base class: ``str(error)`` is a one-line message fit to show a photographer."""


class ImageError(MegaPortraitError):
    """A file could not be read or written as an image (corrupt, not an image, too large, ...)."""


class FaceError(MegaPortraitError):
    """No usable face where one is needed (no face, the chosen index does not exist, ...)."""


class ModelMissingError(MegaPortraitError):
    """A model file or pack the operation needs is not installed."""


class RequestError(MegaPortraitError):
    """A run request is malformed (unknown engine, a parameter out of range, bad JSON)."""


class Cancelled(MegaPortraitError):  # noqa: N818 - reads as "raise Cancelled", like asyncio's
    """The user cancelled the operation; partial results are discarded."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)
