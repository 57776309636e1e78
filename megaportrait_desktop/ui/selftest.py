"""``--self-test``: start without a display, open the demo project, run the classic engine through
the app's own worker, check the output, and exit 0 (or 1 with the reason). The packaging build runs
it on every bundle it makes, so a bundle that lacks a Qt plugin, a model file or a resource fails
there rather than on a photographer's machine.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def run_self_test(timeout_s: float = 180.0) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="megaportrait-selftest-"))
    # Never touch the user's own settings or projects.
    os.environ["MEGAPORTRAIT_CONFIG"] = str(scratch / "config")
    os.environ["MEGAPORTRAIT_MODELS"] = str(scratch / "data" / "models")
    try:
        return _run(scratch, timeout_s)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # each run leaves nothing in the temp folder


def _run(scratch: Path, timeout_s: float) -> int:
    started = time.perf_counter()
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from ..project.demo import ensure_demo_project
    from .app import create_window
    from .theme import apply_dark_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_dark_theme(app)
    window = create_window(ensure_demo_project(scratch / "Demo project"))
    window.show()
    outcome: dict = {}
    loop = QEventLoop()
    window.jobs.run_finished.connect(lambda done: (outcome.update(result=done), loop.quit()))
    window.jobs.failed.connect(lambda training, failure: (outcome.update(error=failure.message), loop.quit()))
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    QTimer.singleShot(0, lambda: window.run_pipeline("all"))
    loop.exec()
    problem = _check(window, outcome)
    window.shutdown()  # every thread stopped, thumbnails and imports included, and the project closed
    elapsed = time.perf_counter() - started
    if problem:
        print(f"self-test FAILED after {elapsed:.1f} s: {problem}", file=sys.stderr)
        return 1
    print(f"self-test passed in {elapsed:.1f} s: demo project opened, classic engine ran, output checked")
    return 0


def _check(window, outcome: dict) -> str | None:
    import numpy as np

    from ..project import list_outputs

    if "error" in outcome:
        return outcome["error"]
    if "result" not in outcome:
        return "the run did not finish in time"
    result, output_id = outcome["result"].result, outcome["result"].output_id
    from ..core.imaging import load_image

    reference = load_image(result.request.reference).pixels
    final = result.final.pixels if result.final is not None else None
    if final is None or reference is None or final.shape != reference.shape:
        return "the output does not have the reference's size"
    if not np.array_equal(final[~result.region], reference[~result.region]):
        return "pixels outside the face region changed"
    if np.abs(final[result.region].astype(int) - reference[result.region]).mean() < 5:
        return "the face was not changed"
    if list_outputs(window.project).total < 1 or not output_id:
        return "the output was not recorded in the project"
    return None
