"""The live preview's worker: the picture keeps moving while a slider does, and ends on the newest value."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np

from megaportrait_desktop.core.live_preview import ClassicPreview, LatestOnlyWorker
from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.core.stages import Stage


def _request(photo_files, cutoff: float) -> RunRequest:
    base = RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                      engine="classic", crop_size=256)
    return base.replace(shading=replace(base.shading, light_cutoff=cutoff))


def test_images_arrive_while_the_slider_still_moves_and_the_last_is_the_newest(photo_files) -> None:
    render = ClassicPreview()
    render(_request(photo_files, 10.0))  # the scene and the pair, as the first preview after opening
    shown: list[tuple[int, float, np.ndarray]] = []
    settled = threading.Event()
    final = {"generation": -1}  # known once the drag ends

    def on_ready(generation: int, images: dict, _waited: float) -> None:
        shown.append((generation, time.perf_counter(), images[Stage.SHADED]))
        if generation == final["generation"]:
            settled.set()

    worker = LatestOnlyWorker(render, on_ready)
    values = 6.0 + 24.0 * (0.5 - 0.5 * np.cos(np.linspace(0, 4 * np.pi, 180)))  # 3 s back and forth at 60 a second
    start = time.perf_counter()
    for i, value in enumerate(values):
        generation = worker.submit(_request(photo_files, float(value)))
        time.sleep(max(0.0, start + (i + 1) / 60 - time.perf_counter()))
    released = time.perf_counter()
    final["generation"] = generation
    if shown and shown[-1][0] == generation:  # the last value's image came before the drag ended
        settled.set()
    assert settled.wait(60)
    worker.shutdown()
    during = [g for g, at, _ in shown if at < released]
    assert len(during) >= 2, f"the picture froze during the drag ({len(shown)} images, all after the release)"
    generations = [g for g, _, _ in shown]
    assert generations == sorted(set(generations))  # never an older picture after a newer one
    assert worker.dropped > 0 and len(shown) < len(values)  # overtaken requests were not rendered
    expected = ClassicPreview()(_request(photo_files, float(values[-1])))[Stage.SHADED]
    assert np.array_equal(shown[-1][2], expected)


def test_a_render_asked_for_before_the_preview_was_cleared_is_not_shown(photo_files) -> None:
    started, release = threading.Event(), threading.Event()
    render = ClassicPreview()

    def slow_render(request: RunRequest) -> dict:
        started.set()
        release.wait(30)
        return render(request)

    shown: list[int] = []
    worker = LatestOnlyWorker(slow_render, lambda g, images, _: shown.append(g))
    worker.submit(_request(photo_files, 12.0))
    assert started.wait(30)
    worker.submit(None)  # the project closed while it rendered
    release.set()
    worker.shutdown()
    assert shown == []
