"""A model pack placed beside the installer is found and, once the user agrees, installed."""

from __future__ import annotations

import shutil

from PySide6.QtWidgets import QMessageBox

from megaportrait_desktop.core.modelstore.packs import find_pack_beside


def test_find_pack_beside_the_installer(tmp_path, tiny_pack) -> None:
    assert find_pack_beside(tmp_path) is None and find_pack_beside(None) is None
    (tmp_path / "MegaPortrait-0.1.0").mkdir()  # the unpacked app itself is not a pack
    (tmp_path / "notes.zip").write_bytes(b"not a zip")
    shutil.copytree(tiny_pack, tmp_path / "studio-pack")
    assert find_pack_beside(tmp_path) == tmp_path / "studio-pack"


def test_first_start_offers_the_pack_and_installs_it(qtbot, tmp_path, tiny_pack, monkeypatch) -> None:
    from megaportrait_desktop.project.demo import ensure_demo_project
    from megaportrait_desktop.ui.app import create_window

    shutil.copytree(tiny_pack, tmp_path / "beside" / "studio-pack")
    monkeypatch.setenv("MEGAPORTRAIT_PACK_DIR", str(tmp_path / "beside"))
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    window = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(window)
    window.show()
    window.offer_models()
    qtbot.waitUntil(lambda: getattr(window, "model_dialog", None) is not None, timeout=20_000)
    dialog = window.model_dialog
    qtbot.waitUntil(lambda: dialog.table.rowCount() == 9 and dialog.table.item(0, 1).text() == "installed",
                    timeout=60_000)
    assert "studio-pack" in asked[0]
    qtbot.waitUntil(lambda: not dialog._workers, timeout=20_000)
    dialog.close()
    window.shutdown()


def test_without_models_or_pack_the_status_bar_points_to_the_manager(qtbot, tmp_path, monkeypatch) -> None:
    from megaportrait_desktop.project.demo import ensure_demo_project
    from megaportrait_desktop.ui.app import create_window

    monkeypatch.setenv("MEGAPORTRAIT_PACK_DIR", str(tmp_path))
    window = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(window)
    window.offer_models()
    qtbot.waitUntil(lambda: "Model Manager" in window.statusBar().currentMessage(), timeout=20_000)
    window.shutdown()
