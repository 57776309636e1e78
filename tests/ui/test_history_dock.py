"""The History dock (pytest-qt): each output shows its identity verdict and score; sort by score, filter by verdict."""

from __future__ import annotations

import numpy as np
import pytest

from megaportrait_desktop.core.identity_report import IdentityReport, verdict_of
from megaportrait_desktop.project import Project

pytest.importorskip("pytestqt")


def _texts(dock) -> list[str]:
    return [dock.list.item(row).text() for row in range(dock.list.count())]


def _ids(dock) -> list[int]:
    from PySide6.QtCore import Qt

    return [dock.list.item(row).data(Qt.ItemDataRole.UserRole) for row in range(dock.list.count())]


@pytest.fixture
def project(tmp_path):
    """Five outputs: three with reports (the client, a mix, still the reference person), two older without."""
    with Project.create(tmp_path / "studio") as project:
        ids = {}
        for name, held_out, ref in (("client", 0.42, 0.71), ("mix", 0.55, 0.50), ("reference", 0.70, 0.20)):
            report = IdentityReport("dlib-resnet-v1", "euclidean", 0.6, held_out - 0.05, held_out, 1, ref,
                                    verdict_of(held_out, ref, 0.6), source_index=0)
            assert report.verdict == name
            ids[name] = project.record_output(request={"engine": "classic"}, engine="classic",
                                              final=np.full((16, 16, 3), 100, np.uint8), identity_score=report.score,
                                              identity_report=report.to_json(), created=1000 + len(ids))
        for i, score in enumerate((0.9, None)):
            ids[f"old{i}"] = project.record_output(request={"engine": "classic"}, engine="classic",
                                                   final=np.full((16, 16, 3), 50, np.uint8), identity_score=score,
                                                   created=10 + i)
    project = Project.open(tmp_path / "studio")
    yield project, ids
    project.close()


def test_items_show_the_verdict_and_score_and_sort_and_filter(qtbot, project) -> None:
    from megaportrait_desktop.ui.history_dock import VERDICT_ROLE, HistoryDock

    project, ids = project
    dock = HistoryDock()
    qtbot.addWidget(dock)
    dock.set_project(project)
    assert dock.list.count() == 5
    by_id = dict(zip(_ids(dock), _texts(dock), strict=True))
    assert "the client · score 0.580" in by_id[ids["client"]]
    assert "a mix · score 0.450" in by_id[ids["mix"]]
    assert "still the reference person · score 0.300" in by_id[ids["reference"]]
    assert "no identity report · score 0.900" in by_id[ids["old0"]]
    assert "no identity report · score n/a" in by_id[ids["old1"]]
    item = dock.list.item(_ids(dock).index(ids["mix"]))
    assert item.data(VERDICT_ROLE) == "mix" and "0.55 to the client" in item.toolTip()

    dock.sort.setCurrentIndex(dock.sort.findData("score"))  # highest similarity first, no score last
    assert _ids(dock) == [ids["old0"], ids["client"], ids["mix"], ids["reference"], ids["old1"]]

    for verdict, expected in (("client", [ids["client"]]), ("reference", [ids["reference"]]),
                              ("none", [ids["old0"], ids["old1"]]), (None, _ids(dock))):
        dock.verdict_filter.setCurrentIndex(dock.verdict_filter.findData(verdict))
        assert _ids(dock) == expected, verdict


@pytest.fixture
def big_history(tmp_path):
    """250 outputs: more than two pages of the dock."""
    rng = np.random.default_rng(0)
    with Project.create(tmp_path / "busy") as project:
        for i in range(250):
            project.record_output(request={"i": i}, engine="classic", created=float(i),
                                  final=rng.integers(0, 255, (12, 12, 3), dtype=np.uint8))
    project = Project.open(tmp_path / "busy")
    yield project
    project.close()


def test_history_pages_through_every_output_as_it_scrolls(qtbot, big_history) -> None:
    from megaportrait_desktop.ui.history_dock import PAGE_SIZE, HistoryDock

    dock = HistoryDock()
    qtbot.addWidget(dock)
    dock.show()
    dock.set_project(big_history)
    assert dock.list.count() == PAGE_SIZE and dock.count.text() == f"{PAGE_SIZE} of 250"
    bar = dock.list.verticalScrollBar()
    while dock.list.count() < 250:
        before = dock.list.count()
        qtbot.waitUntil(lambda: bar.maximum() > bar.value())  # the new items are laid out
        bar.setValue(bar.maximum())
        assert dock.list.count() > before  # the next page came in
    ids = _ids(dock)
    assert len(set(ids)) == 250 and ids == sorted(ids, reverse=True)  # every output once, newest first
    assert dock.count.text() == "250 of 250"


def test_rating_favourite_and_tags_are_edited_in_the_dock(qtbot, project) -> None:
    from megaportrait_desktop.ui.history_dock import HistoryDock

    project, _ = project
    dock = HistoryDock()
    qtbot.addWidget(dock)
    dock.set_project(project)
    dock.list.setCurrentRow(0)
    output_id = dock.current_id()
    dock.rating.setValue(4)  # shown at once, without a re-sort
    assert "★★★★" in dock.list.item(0).text() and project.output(output_id).rating == 4
    dock.favourite.setChecked(True)
    assert project.output(output_id).favourite and "♥" in dock.list.item(0).text()
    dock.tags.setText("delivery, retouch later")
    dock.tags.editingFinished.emit()
    assert project.output(output_id).tags == ("delivery", "retouch later")
    assert "#delivery" in dock.list.item(0).text()
    dock.tags.setText("delivery")
    dock.tags.editingFinished.emit()
    assert project.output(output_id).tags == ("delivery",)
    dock.favourites_only.setChecked(True)
    assert _ids(dock) == [output_id]
    dock.favourites_only.setChecked(False)
    dock.tag_filter.setText("delivery")
    dock.tag_filter.editingFinished.emit()
    assert _ids(dock) == [output_id]
