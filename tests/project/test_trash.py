"""Undoable deletes: a deleted output is hidden, its files survive garbage collection while the deletion
can be undone, Undo brings it back whole, and the deletion is carried out when its window passes."""

from __future__ import annotations

import numpy as np

from megaportrait_desktop.project import OutputQuery, Project, list_outputs
from megaportrait_desktop.project.trash import OutputTrash


def test_delete_is_undoable_until_its_window_passes(tmp_path, astronaut, grace) -> None:
    project = Project.create(tmp_path / "p")
    keep = project.record_output(request={"n": 1}, engine="classic", final=astronaut, stages={"A": grace[:64, :64]})
    gone = project.record_output(request={"n": 2}, engine="classic", final=grace, stages={"B": astronaut[:64, :64]},
                                 tags=("client pick",))
    project.set_rating(gone, 4)
    files = [project.path_of(project.output(gone).final_path), *(project.path_of(p)
                                                                 for p in project.output(gone).stages.values())]
    trash = OutputTrash(project, window_s=600)
    deletion = trash.delete([gone], now=1000.0)
    assert deletion.output_ids == (gone,) and trash.hidden == (gone,)
    listed = list_outputs(project, OutputQuery(exclude_ids=trash.hidden))
    assert [o.id for o in listed.items] == [keep] and listed.total == 1
    # Garbage collection (any other delete runs it) leaves the hidden output's files alone.
    other = project.record_output(request={"n": 3}, engine="classic", final=np.zeros((8, 8, 3), np.uint8))
    project.delete_output(other)
    assert all(f.is_file() for f in files)
    # Undo: everything is back, rating and tags included.
    assert trash.undo() == deletion and trash.hidden == ()
    out = project.output(gone)
    assert out.rating == 4 and out.tags == ("client pick",) and all(f.is_file() for f in files)
    # Delete again; within the window nothing happens, after it the output and its files go.
    trash.delete([gone], now=2000.0)
    assert trash.purge(now=2599.0) == 0 and project.output(gone)
    assert trash.purge(now=2600.0) == 1 and trash.pending == []
    assert list_outputs(project).total == 1 and not any(f.exists() for f in files)
    project.close()


def test_closing_the_project_carries_out_pending_deletions(tmp_path, astronaut) -> None:
    project = Project.create(tmp_path / "p")
    ids = [project.record_output(request={"n": i}, engine="classic", final=astronaut) for i in range(3)]
    trash = OutputTrash(project)
    trash.delete(ids[:2])
    trash.delete([ids[0]])  # already hidden: nothing more to do
    assert len(trash.pending) == 1
    assert trash.empty() == 2 and trash.pending == []
    project.close()
    with Project.open(tmp_path / "p") as again:
        assert [o.id for o in list_outputs(again).items] == [ids[2]]


def test_a_crash_before_the_deletion_loses_nothing(tmp_path, astronaut) -> None:
    project = Project.create(tmp_path / "p")
    output_id = project.record_output(request={}, engine="classic", final=astronaut)
    OutputTrash(project).delete([output_id])
    project.close()  # the app died: nobody carried the deletion out
    with Project.open(tmp_path / "p") as again:
        assert again.output(output_id).final_path
