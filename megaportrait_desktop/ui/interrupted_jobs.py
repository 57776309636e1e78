"""The jobs a previous session left unfinished (the app was killed or crashed): run them again or discard them."""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from ..project import Job, Project, ProjectError


class InterruptedJobsDialog(QDialog):
    """Non-modal: lists each interrupted job, checked; Run again / Discard act on the checked ones."""

    run_again_requested = Signal(list)  # job ids
    discard_requested = Signal(list)    # job ids

    def __init__(self, project: Project, jobs: list[Job], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("interruptedJobsDialog")
        self.setWindowTitle("Interrupted jobs")
        self.setModal(False)
        intro = QLabel(f"{len(jobs)} job(s) did not finish last time MegaPortrait ran (it was closed or stopped "
                       "while they were queued or running). Nothing they made was recorded.")
        intro.setWordWrap(True)
        self.list = QListWidget()
        for job in jobs:
            item = QListWidgetItem(describe_job(project, job))
            item.setData(Qt.ItemDataRole.UserRole, job.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.list.addItem(item)
        buttons = QDialogButtonBox()
        self.run_again = buttons.addButton("Run again", QDialogButtonBox.ButtonRole.AcceptRole)
        self.discard = buttons.addButton("Discard", QDialogButtonBox.ButtonRole.DestructiveRole)
        later = buttons.addButton("Later", QDialogButtonBox.ButtonRole.RejectRole)
        later.setToolTip("Keep them: they are listed again next time the project opens")
        self.run_again.clicked.connect(lambda: self._emit(self.run_again_requested))
        self.discard.clicked.connect(lambda: self._emit(self.discard_requested))
        later.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(520, 300)

    def checked_ids(self) -> list[int]:
        return [self.list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.list.count())
                if self.list.item(i).checkState() == Qt.CheckState.Checked]

    def _emit(self, signal) -> None:
        signal.emit(self.checked_ids())
        self.accept()


def describe_job(project: Project, job: Job) -> str:
    """"Run all: Grace → Astronaut (queued 14:02)" — names looked up in the project where they still exist."""
    when = dt.datetime.fromtimestamp(job.created).strftime("%d %b %H:%M")
    identity = _name(project.identity, job.identity_id)
    if job.kind == "train":
        return f"Training {identity} (queued {when})"
    reference = _name(project.reference, job.payload.get("reference_id"))
    until = job.payload.get("until")
    what = "Run all" if until is None else f"Stage {until}"
    return f"{what}: {identity} → {reference} (queued {when})"


def _name(lookup, item_id: int | None) -> str:
    if not item_id:
        return "?"
    try:
        return lookup(item_id).name
    except ProjectError:  # deleted since: the job still shows
        return f"#{item_id} (deleted)"
