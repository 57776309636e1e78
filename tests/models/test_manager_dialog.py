"""The model manager dialog (pytest-qt): the roles with their state; installing a pack updates them."""

from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("pytestqt")


@pytest.fixture
def dialog(qtbot):
    from megaportrait_desktop.ui.model_manager import ModelManagerDialog

    dlg = ModelManagerDialog()
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitUntil(lambda: dlg.table.rowCount() == 9, timeout=20_000)
    yield dlg
    # No worker may outlive the dialog it reports to.
    qtbot.waitUntil(lambda: not dlg._workers, timeout=20_000)


def _column(dlg, col: int) -> list[str]:
    return [dlg.table.item(row, col).text() for row in range(dlg.table.rowCount())]


def test_the_dialog_lists_every_role_and_installing_a_pack_updates_the_states(dialog, qtbot, tiny_pack) -> None:
    from megaportrait_desktop.core.modelstore.manager import MANAGED_ROLES, TITLES

    assert _column(dialog, 0) == [TITLES[r] for r in MANAGED_ROLES]
    # Only the identity scorer (dlib, installed with the app) is there on a fresh machine.
    assert _column(dialog, 1) == ["missing"] * 6 + ["installed"] + ["missing"] * 2
    with qtbot.waitSignal(dialog.states_changed, timeout=30_000,
                          check_params_cb=lambda states: states[0].state == "installed"):
        dialog.install_pack(tiny_pack)
    # The speed LoRA is optional (draft quality) and not in this pack; annotator weights never come in packs.
    assert _column(dialog, 1) == ["installed"] * 5 + ["missing"] + ["installed"] * 2 + ["missing"]
    assert all(_column(dialog, 2)[:5])  # sizes shown
    assert dialog.table.item(5, 4).text() == "CreativeML Open RAIL++-M"  # the suggested speed LoRA's licence
    assert dialog.table.item(6, 4).text() == "Public domain (CC0 1.0)"
    assert "not accepted yet" in dialog.table.item(7, 4).text()  # insightface's non-commercial licence
    assert dialog.status.text().startswith("Installed")
    assert "sha256" in dialog.table.item(0, 1).toolTip()


def test_a_refused_pack_shows_why_and_changes_nothing(dialog, qtbot, tiny_pack, tmp_path) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(tiny_pack, pack)
    data = json.loads((pack / "manifest.json").read_text())
    data["version"] = 7
    (pack / "manifest.json").write_text(json.dumps(data))
    with qtbot.waitSignal(dialog.states_changed, timeout=30_000):
        dialog.install_pack(pack)
    qtbot.waitUntil(lambda: "version 7 is unknown" in dialog.status.text(), timeout=10_000)
    assert _column(dialog, 1) == ["missing"] * 6 + ["installed"] + ["missing"] * 2


def test_offline_mode_checkbox_is_saved(dialog) -> None:
    from megaportrait_desktop.core.model_settings import load_settings

    dialog.table.selectRow(2)
    assert dialog.download_button.isEnabled()
    dialog.offline.setChecked(True)
    assert load_settings().offline and not dialog.download_button.isEnabled()


def test_fast_path_and_low_memory_settings_are_saved(dialog) -> None:
    from megaportrait_desktop.core.diffusion.engine import DiffusionEngine
    from megaportrait_desktop.core.model_settings import load_settings

    assert dialog.fast_path.isChecked() and dialog.low_memory.currentText() == "Auto"  # the defaults
    dialog.fast_path.setChecked(False)
    assert load_settings().fast_path == "off"
    assert DiffusionEngine().device("cpu").fast is None  # what the app's worker reads at its next job
    dialog.low_memory.setCurrentText("On")
    assert load_settings().low_memory == "on" and load_settings().fast_path == "off"
    dialog.fast_path.setChecked(True)
    assert load_settings().fast_path == "auto"
