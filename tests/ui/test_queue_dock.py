"""The Queue dock (pytest-qt): a batch queued from the app runs, pauses, resumes, cancels, and shows its results."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import import_identity_photos, import_references, list_outputs, queue
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window

SETTINGS = RunRequest(identity=("-",), reference="-", crop_size=256).settings()


@pytest.fixture
def window(qtbot, tmp_path, astronaut, grace):
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    project = win.project
    Image.fromarray(astronaut).save(tmp_path / "eileen.png")
    import_identity_photos(project, project.create_identity("Eileen"), [tmp_path / "eileen.png"])
    Image.fromarray(grace[30:, :]).save(tmp_path / "ref_grace.png")
    Image.fromarray(np.ascontiguousarray(astronaut[:, ::-1])).save(tmp_path / "ref_mirror.png")
    import_references(project, [tmp_path / "ref_grace.png", tmp_path / "ref_mirror.png"])
    win.identities.refresh()
    win.references.refresh()
    yield win
    win.shutdown()


def _summary(win, batch_id):
    return queue.summary(win.project, batch_id)


def test_a_2x3_batch_runs_from_the_queue_and_shows_its_results_best_first(window, qtbot) -> None:
    actions = window.batch_actions
    batch_id = actions.queue([i.id for i in window.project.identities()],
                             [r.id for r in window.project.references()], SETTINGS, "studio day")
    dock = actions.dock
    assert dock.table.rowCount() == 6 and dock.batch_id() == batch_id
    qtbot.waitUntil(lambda: _summary(window, batch_id).done == 6, timeout=120_000)
    qtbot.waitUntil(lambda: dock.results.count() == 6, timeout=10_000)
    scores = [window.project.output(dock.results.item(i).data(Qt.ItemDataRole.UserRole)).identity_score
              for i in range(dock.results.count())]
    assert scores == sorted(scores, reverse=True)  # the contact sheet: best match first
    assert "6 of 6 done" in dock.status.text()
    history = window.history
    history.batch_filter.setCurrentIndex(history.batch_filter.findData(batch_id))
    assert history.list.count() == 6 and "batch #" in history.list.item(0).text()
    assert list_outputs(window.project).total == 6


def test_pause_cancel_one_and_resume_from_the_dock(window, qtbot) -> None:
    actions = window.batch_actions
    dock = actions.dock
    batch_id = actions.queue([i.id for i in window.project.identities()],
                             [r.id for r in window.project.references()], SETTINGS)
    dock.buttons["pause"].click()
    qtbot.waitUntil(lambda: "(paused)" in dock.batch.currentText(), timeout=10_000)
    qtbot.waitUntil(lambda: _summary(window, batch_id).running == 0, timeout=60_000)
    waiting = queue.queue_jobs(window.project, batch_id, ("queued",))
    assert waiting  # nothing more starts while paused
    last = waiting[-1].id
    dock.table.selectRow(dock._rows[last])
    dock.buttons["cancel"].click()
    qtbot.waitUntil(lambda: window.project.job(last).state == "cancelled", timeout=10_000)
    dock.buttons["run"].click()
    qtbot.waitUntil(lambda: _summary(window, batch_id).left == 0, timeout=120_000)
    final = _summary(window, batch_id)
    assert (final.done, final.cancelled, final.failed) == (5, 1, 0)
    assert window.project.job(last).output_id is None
