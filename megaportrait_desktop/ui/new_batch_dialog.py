"""New batch: which clients and which references; the session's settings apply to every pair."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QWidget,
)

from ..project import Project


class NewBatchDialog(QDialog):
    def __init__(self, project: Project, engine: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New batch")
        self.setObjectName("newBatchDialog")
        trains = engine == "diffusion"
        self.identities = self._checklist([(i.id, f"{i.name} ({i.photo_count} photos"
                                                  f"{', trains first' if trains and not i.lora_path else ''})")
                                           for i in project.identities() if i.photo_count])
        self.references = self._checklist([(r.id, f"{r.name} ({r.width}×{r.height})") for r in project.references()])
        self.name = QLineEdit()
        self.name.setPlaceholderText("optional, e.g. the client's shoot")
        self.summary = QLabel()
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok = buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setText("Queue and run")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel(f"Every pair runs with the current settings ({engine} engine, the Pipeline panel's sliders).")
        note.setWordWrap(True)
        grid = QGridLayout(self)
        grid.addWidget(QLabel("Clients"), 0, 0)
        grid.addWidget(QLabel("References"), 0, 1)
        grid.addWidget(self.identities, 1, 0)
        grid.addWidget(self.references, 1, 1)
        grid.addWidget(QLabel("Name"), 2, 0)
        grid.addWidget(self.name, 2, 1)
        grid.addWidget(note, 3, 0, 1, 2)
        grid.addWidget(self.summary, 4, 0, 1, 2)
        grid.addWidget(buttons, 5, 0, 1, 2)
        for view in (self.identities, self.references):
            view.itemChanged.connect(lambda _: self._update())
        self._update()
        self.resize(620, 420)

    def _checklist(self, entries: list[tuple[int, str]]) -> QListWidget:
        view = QListWidget()
        for item_id, text in entries:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, item_id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            view.addItem(item)
        return view

    def chosen(self, view: QListWidget) -> list[int]:
        return [view.item(i).data(Qt.ItemDataRole.UserRole) for i in range(view.count())
                if view.item(i).checkState() == Qt.CheckState.Checked]

    def _update(self) -> None:
        pairs = len(self.chosen(self.identities)) * len(self.chosen(self.references))
        self.summary.setText(f"{pairs} portrait(s) will be queued." if pairs else "Choose at least one client and "
                                                                                   "one reference.")
        self.ok.setEnabled(bool(pairs))
