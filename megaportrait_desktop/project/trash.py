"""Deleting outputs so that Delete can be undone.

A deleted output is only hidden at first: its rows, and so its files, stay in the project (garbage
collection deletes only files that no row names, so nothing of it can go while it is hidden). The
deletion is carried out when its undo window has passed or when the project closes. If the app dies
first, the output is simply still there: an undoable deletion can lose nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import ProjectError
from .project import Project

#: How long a deletion can be undone (seconds), unless the project closes first.
UNDO_WINDOW_S = 15 * 60


@dataclass(frozen=True)
class Deletion:
    """One Delete: the outputs it hid and when."""

    output_ids: tuple[int, ...]
    when: float


class OutputTrash:
    """The project's deletions that can still be undone, oldest first."""

    def __init__(self, project: Project, window_s: float = UNDO_WINDOW_S) -> None:
        self.project = project
        self.window_s = window_s
        self.pending: list[Deletion] = []

    @property
    def hidden(self) -> tuple[int, ...]:
        """Every output hidden by a deletion not yet carried out (History leaves them out)."""
        return tuple(i for d in self.pending for i in d.output_ids)

    def delete(self, output_ids: list[int], now: float | None = None) -> Deletion:
        """Hide ``output_ids`` (checked to exist) until the deletion is undone or carried out."""
        for output_id in output_ids:
            self.project.output(output_id)  # raises ProjectError for an output that is not there
        deletion = Deletion(tuple(i for i in output_ids if i not in self.hidden), time.time() if now is None else now)
        if deletion.output_ids:
            self.pending.append(deletion)
        return deletion

    def undo(self) -> Deletion | None:
        """Bring back the outputs of the latest deletion (``None`` when there is nothing to undo)."""
        return self.pending.pop() if self.pending else None

    def purge(self, now: float | None = None) -> int:
        """Carry out the deletions whose undo window has passed; returns how many outputs went."""
        now = time.time() if now is None else now
        due = [d for d in self.pending if now - d.when >= self.window_s]
        return self._carry_out(due)

    def empty(self) -> int:
        """Carry out every pending deletion (the project is closing)."""
        return self._carry_out(list(self.pending))

    def _carry_out(self, deletions: list[Deletion]) -> int:
        gone = 0
        for deletion in deletions:
            self.pending.remove(deletion)
            for output_id in deletion.output_ids:
                try:
                    self.project.delete_output(output_id)
                    gone += 1
                except ProjectError:
                    pass  # already gone (deleted from the command line meanwhile): nothing left to do
        return gone
