"""Settings → Compute (pytest-qt) against the real test cluster: the connection test lists the nodes, their
workers and model agreement; a batch queued in the app then runs there, and the Queue dock names the nodes."""

from __future__ import annotations

import pytest

from megaportrait_desktop.core.request import RunRequest
from megaportrait_desktop.project import list_outputs, queue

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

SETTINGS = RunRequest(identity=("-",), reference="-", crop_size=256).settings()


@pytest.fixture
def window(qtbot, project_dir):
    from megaportrait_desktop.ui.app import create_window

    win = create_window(project_dir)
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    yield win
    win.shutdown()


def test_the_compute_dialog_tests_the_cluster_and_the_queue_runs_there(window, qtbot, cluster, pack) -> None:
    from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec, save_settings
    from megaportrait_desktop.ui.compute_dialog import ComputeDialog
    from megaportrait_desktop.ui.compute_settings import load_choice

    save_settings(ModelSettings(models={"base": ModelSpec(str(pack.studio))}))  # this computer: the studio's pack
    assert load_choice().describe() == "this computer"
    dialog = ComputeDialog(parent=window)
    qtbot.addWidget(dialog)
    assert dialog.local.isChecked() and not dialog.test_button.isEnabled()
    dialog.cluster.setChecked(True)
    dialog.address.setText(cluster.client_address)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.nodes.rowCount() == 2, timeout=120_000)
    rows = [[dialog.nodes.item(r, c).text() for c in range(dialog.nodes.columnCount())] for r in range(2)]
    assert [r[0] for r in rows] == ["head", "node-b"] and [r[3] for r in rows] == ["1", "1"]
    assert rows[0][4] == "same models as this computer"
    assert rows[1][4].startswith("base model (Stable Diffusion 1.5) differs")
    assert "2 node(s), 2 worker(s)" in dialog.status.text() and "1 of 2 hold this computer's models" in \
        dialog.status.text()
    dialog.accept()
    assert load_choice().on_cluster and load_choice().address == cluster.client_address
    window.batch_actions.controller.use_new_runner()

    project = window.project
    actions = window.batch_actions
    batch_id = actions.queue([project.identities()[1].id], [r.id for r in project.references()], SETTINGS)
    qtbot.waitUntil(lambda: queue.summary(project, batch_id).done == 4, timeout=180_000)
    dock = actions.dock
    qtbot.waitUntil(lambda: all(dock.table.item(r, 2).text() == "done" for r in range(dock.table.rowCount())),
                    timeout=10_000)
    workers = {dock.table.item(r, 4).text() for r in range(dock.table.rowCount())}
    assert workers <= {"head·gpu0", "node-b·gpu0"} and workers  # the Worker column names the node
    assert list_outputs(project).total == 4
