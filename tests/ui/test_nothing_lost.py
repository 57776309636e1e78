"""Issue 13 in the app: the recent list, errors nobody caught, interrupted runs, a failed training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from megaportrait_desktop.core.logs import log_path
from megaportrait_desktop.project import Project, list_outputs
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.error_handler import UnexpectedErrors
from megaportrait_desktop.ui.errors import show_error
from megaportrait_desktop.ui.main_window import MainWindow
from megaportrait_desktop.ui.recent import recent_projects

ROOT = Path(__file__).resolve().parents[2]


def _open(qtbot, project=None) -> MainWindow:
    win = create_window(project)
    qtbot.addWidget(win)
    win.show()
    return win


def _boxes(title: str) -> list[QMessageBox]:
    return [w for w in QApplication.topLevelWidgets()
            if isinstance(w, QMessageBox) and w.isVisible() and w.windowTitle() == title]


def test_the_recent_list_is_a_list_after_a_restart_and_drops_a_project_that_is_gone(qtbot, tmp_path) -> None:
    demo = ensure_demo_project(tmp_path / "shoot")
    first = _open(qtbot, demo)
    first.close()  # quit: the layout and the recent list are saved
    assert recent_projects() == [str(demo)]

    second = _open(qtbot)  # start again with no project named: the most recent opens
    assert second.project.root == demo
    assert [a.text() for a in second.recent_menu.actions()] == [str(demo)]  # not "/", "t", "m", ...
    assert not _boxes("Open project")
    second.close()

    demo.rename(tmp_path / "moved away")
    third = _open(qtbot)  # the recent project is gone: the demo opens, with a note and no dialog
    assert third.project is not None and third.project.root != demo
    assert "no longer there" in third.statusBar().currentMessage()
    assert str(demo) not in recent_projects()
    assert not _boxes("Open project")
    third.close()


def test_an_error_raised_before_the_window_shows_waits_for_it(qtbot) -> None:
    window = MainWindow()
    qtbot.addWidget(window)
    box = show_error(window, "Open project", "The project is open in another window.")
    assert not box.isVisible()  # it would sit behind the main window
    window.show()
    qtbot.waitUntil(box.isVisible, timeout=2000)
    window.shutdown()


@pytest.mark.qt_no_exception_capture
def test_an_error_in_a_slot_reaches_the_user_and_the_log(qtbot, tmp_path) -> None:
    window = _open(qtbot, ensure_demo_project(tmp_path / "demo"))
    errors = UnexpectedErrors().install()
    window.attach_error_handler(errors)
    try:
        window.panel.show_done("Saved to History as #3.")
        # The project's database is damaged under the open window; the next History refresh fails in a slot.
        db = window.project.root / "project.db"
        db.write_bytes(b"this is not a database" * 200)
        QTimer.singleShot(0, window.history.refresh)
        qtbot.waitUntil(lambda: bool(_boxes("Something went wrong")), timeout=5000)
        box = _boxes("Something went wrong")[0]
        assert "DatabaseError" in box.text() and "megaportrait.log" in box.text()
        assert "Saved to History" not in window.panel.status.text()  # the status line never claims success
        assert "Error" in window.job_label.text()
        logged = log_path().read_text(encoding="utf-8")
        assert "unexpected error" in logged and "Traceback" in logged and "DatabaseError" in logged
    finally:
        errors.uninstall()
        window.shutdown()


# A run killed with the app: the project's jobs table holds it as running when the project opens again.
KILLED_RUN = r"""
import sys
from megaportrait_desktop.core.progress import CancelToken
from megaportrait_desktop.project import Project
from megaportrait_desktop.ui.jobs import queue_run, run_job, request_of
project = Project.open(sys.argv[1], program="MegaPortrait Desktop")
identity = project.identities()[0]
reference = project.references()[0]
from megaportrait_desktop.core.request import RunRequest
photos = tuple(str(project.path_of(p.path)) for p in project.identity_photos(identity.id))
request = RunRequest(identity=photos, reference=str(project.path_of(reference.path)))
job_id = queue_run(project, request, identity.id, reference.id, None)
def progress(p):
    print(p.stage, flush=True)
    if p.stage == "identity":
        sys.stdin.readline()  # killed here, mid-run
run_job(project, job_id, request, identity.id, reference.id, None)(progress, CancelToken(), {})
"""


def _kill_a_run(root: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(root)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        for line in child.stdout:
            if line.strip() == "identity":
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()


def test_a_run_killed_with_the_app_is_offered_again_and_runs(qtbot, tmp_path) -> None:
    demo = ensure_demo_project(tmp_path / "demo")
    _kill_a_run(demo)
    with Project.open(demo, read_only=True) as project:
        (job,) = project.jobs()
        assert job.state == "running" and job.kind == "generate"

    window = _open(qtbot, demo)
    dialog = window.interrupted_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=2000)
    assert dialog.list.count() == 1 and "Run all" in dialog.list.item(0).text()
    with qtbot.waitSignal(window.worker.finished, timeout=60_000) as blocker:
        dialog.run_again.click()
    output_id = blocker.args[1].output_id
    qtbot.waitUntil(lambda: window.history.list.count() == 1, timeout=5000)
    (job,) = window.project.jobs()
    assert (job.id, job.state, job.output_id) == (dialog.checked_ids()[0], "done", output_id)
    window.close()

    again = _open(qtbot, demo)  # nothing left to offer
    assert not again.project.interrupted_jobs() and not hasattr(again, "interrupted_dialog")
    assert list_outputs(again.project).total == 1
    again.close()


def test_an_interrupted_run_can_be_discarded(qtbot, tmp_path) -> None:
    demo = ensure_demo_project(tmp_path / "demo")
    _kill_a_run(demo)
    window = _open(qtbot, demo)
    qtbot.waitUntil(window.interrupted_dialog.isVisible, timeout=2000)
    window.interrupted_dialog.discard.click()
    (job,) = window.project.jobs()
    assert job.state == "cancelled" and not window.project.interrupted_jobs()
    assert list_outputs(window.project).total == 0
    window.close()


def test_runs_are_written_to_the_jobs_table(qtbot, tmp_path) -> None:
    window = _open(qtbot, ensure_demo_project(tmp_path / "demo"))
    with qtbot.waitSignal(window.worker.finished, timeout=60_000) as blocker:
        window.run_pipeline("all")
    output_id = blocker.args[1].output_id
    (job,) = window.project.jobs()
    assert (job.kind, job.state, job.output_id) == ("generate", "done", output_id)
    assert job.payload["identity_id"] == window.identities.current_id() and job.payload["until"] is None
    window.close()


def test_a_failed_training_leaves_the_identity_trainable_with_the_reason(qtbot, tmp_path) -> None:
    window = _open(qtbot, ensure_demo_project(tmp_path / "demo"))  # no base model installed here
    identity_id = window.identities.current_id()
    for attempt in (1, 2):  # failing twice: still trainable, the reason still shown
        with qtbot.waitSignal(window.worker.failed, timeout=60_000):
            window.identities.train.click()
        qtbot.waitUntil(lambda: bool(_boxes("Training failed")), timeout=5000)
        box = _boxes("Training failed")[0]
        assert "Open the model manager" in [b.text() for b in box.buttons()]
        box.close()
        identity = window.project.identity(identity_id)
        assert identity.training_state == "failed" and "model" in identity.training_error.lower()
        item = window.identities.list.currentItem()
        assert "Train to try again" in item.text() and identity.training_error in item.toolTip()
        assert window.identities.train.isEnabled()
        assert [j.state for j in window.project.jobs()] == ["failed"] * attempt
    root = window.project.root
    window.close()
    reopened = _open(qtbot, root)  # the reason stays until the next attempt
    assert "Train to try again" in reopened.identities.list.currentItem().text()
    assert not reopened.project.interrupted_jobs()
    reopened.close()
