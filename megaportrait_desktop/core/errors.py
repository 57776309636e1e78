"""The typed errors that core raises: each carries a plain message that says what to do."""

from __future__ import annotations

import errno
from enum import StrEnum


class ErrorKind(StrEnum):
    """What kind of failure a job ended with: it decides the remedy the app offers."""

    INPUT = "input"        # a photo, mask or setting the user can change
    MODELS = "models"      # a model file missing, damaged or not the one a recalled request needs
    MEMORY = "memory"      # out of (GPU) memory
    DISK = "disk"          # disk full, read-only or no permission
    PROJECT = "project"    # the project store refused (busy elsewhere, damaged, read-only)
    INTERNAL = "internal"  # a bug: the details go to the log



class MegaPortraitError(Exception):
    """Base class: ``str(error)`` is a one-line message fit to show a photographer; ``kind`` says what
    the user can do about it (see :data:`REMEDIES`)."""

    kind: ErrorKind = ErrorKind.INPUT


class ImageError(MegaPortraitError):
    """A file could not be read or written as an image (corrupt, not an image, too large, ...)."""


class FaceError(MegaPortraitError):
    """No usable face where one is needed (no face, the chosen index does not exist, ...)."""


class ModelMissingError(MegaPortraitError):
    """A model file or pack the operation needs is not installed."""

    kind = ErrorKind.MODELS


class RequestError(MegaPortraitError):
    """A run request is malformed (unknown engine, a parameter out of range, bad JSON)."""


class Cancelled(MegaPortraitError):  # noqa: N818 - reads as "raise Cancelled", like asyncio's
    """The user cancelled the operation; partial results are discarded."""

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class StorageError(MegaPortraitError):
    """The disk said no: full, read-only, or no permission. Nothing is damaged; the message says what to do."""

    kind = ErrorKind.DISK


def os_error_message(exc: OSError, what: str) -> str:
    """One line naming why ``what`` could not be read or written, and what to do; never calls it damage.

    ``what`` names the thing, e.g. ``"the project"`` or ``"photo.jpg"``.
    """
    code = exc.errno
    where = f" ({exc.filename})" if exc.filename else ""
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return f"The disk holding {what} is full{where}; free some space and try again. Nothing was changed."
    if code == errno.EROFS:
        return (f"{_upper(what)} is on a read-only disk{where} (a backup share, a DVD, a locked card?); copy it to "
                "a writable disk to change it.")
    if code in (errno.EACCES, errno.EPERM):
        return (f"No permission to use {what}{where}; check the folder's permissions (or its owner) and try "
                "again.")
    reason = exc.strerror or type(exc).__name__
    return f"Could not read or write {what}{where}: {reason}."


def _upper(text: str) -> str:
    return text[:1].upper() + text[1:]


#: What the user can do about each kind (the app adds a button for MODELS).
REMEDIES = {
    ErrorKind.INPUT: "Change the photo, mask or setting the message names, then run again.",
    ErrorKind.MODELS: "Open Models → Model Manager to install or choose the model.",
    ErrorKind.MEMORY: "Close other programs, turn on low-memory mode or lower the working size, then run again.",
    ErrorKind.DISK: "Free some disk space (or pick a writable folder), then run again.",
    ErrorKind.PROJECT: "Follow the message; what is already in the project is safe.",
    ErrorKind.INTERNAL: "This is a bug; the details are in megaportrait.log. Your project is safe.",
}


def classify(exc: BaseException) -> ErrorKind:
    """The kind of a failure, from its type (never from its message text)."""
    if isinstance(exc, MegaPortraitError):
        return exc.kind
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":  # torch.cuda.OutOfMemoryError
        return ErrorKind.MEMORY
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT):
        return ErrorKind.DISK
    return ErrorKind.INTERNAL
