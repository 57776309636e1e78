"""Progress reporting and cancellation, as plain callbacks (no Qt): workers adapt them to signals."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import Cancelled


@dataclass(frozen=True)
class Progress:
    """One progress report: ``step`` of ``total`` within ``stage``; ``preview`` is an optional image."""

    stage: str
    step: int
    total: int
    message: str = ""
    preview: object | None = None

    @property
    def fraction(self) -> float:
        return self.step / self.total if self.total else 0.0


ProgressCallback = Callable[[Progress], None]


class CancelToken:
    """Set from any thread; long work calls :meth:`check` between steps and stops with :class:`Cancelled`.

    ``event`` may be any object with ``set``/``is_set`` (a ``multiprocessing`` event lets another process
    cancel the work).
    """

    def __init__(self, event=None) -> None:
        self._event = event if event is not None else threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled()


class Reporter:
    """Bundles a progress callback and a cancel token; every report is also a cancellation point."""

    def __init__(self, on_progress: ProgressCallback | None = None, cancel: CancelToken | None = None) -> None:
        self._on_progress = on_progress
        self.cancel = cancel or CancelToken()

    def __call__(self, stage: str, step: int, total: int, message: str = "", preview: object | None = None) -> None:
        self.cancel.check()
        if self._on_progress is not None:
            self._on_progress(Progress(stage, step, total, message, preview))


T = TypeVar("T")

#: How often :func:`run_cancellable` looks at the cancel token.
POLL_S = 0.05


def run_cancellable(cancel: CancelToken, fn: Callable[..., T], *args, **kwargs) -> T:
    """``fn(*args, **kwargs)`` on a helper thread, while this one checks ``cancel`` every :data:`POLL_S`.

    For one long call that cannot check the token itself (OpenCV's Poisson solver on a 40-megapixel
    portrait runs for about a second): a cancel takes effect at once and :class:`Cancelled` is raised
    here; the call runs to its end on its own thread and its result is dropped. ``fn`` must not touch
    state the caller keeps using (pure functions of arrays).
    """
    value: list[T] = []
    error: list[BaseException] = []
    done = threading.Event()

    def call() -> None:
        try:
            value.append(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            error.append(exc)
        finally:
            done.set()
    threading.Thread(target=call, name="cancellable", daemon=True).start()
    while not done.wait(POLL_S):
        cancel.check()
    if error:
        raise error[0]
    return value[0]


class StageClock:
    """Wall time per stage: :meth:`lap` closes the stage that just ran (for ``RunResult.timings``)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = now - self._last
        self._last = now
