"""New Project: a name and a location, as in Lightroom's New Catalog; the project is ``<location>/<name>``."""

from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

#: Characters no file system accepts in a folder name (Windows' list: the strictest one).
_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]')


def folder_name(name: str) -> str:
    """The project's folder name for ``name``: the characters a disk refuses replaced, no dots at the ends."""
    return _BAD.sub("_", " ".join(name.split())).strip(" .")


def default_location() -> Path:
    """Where new projects go unless the user chose another place before: ~/Pictures/MegaPortrait."""
    pictures = Path.home() / "Pictures"
    return (pictures if pictures.is_dir() else Path.home()) / "MegaPortrait"


class NewProjectDialog(QDialog):
    """Asks for the project's name and the folder it goes in; :meth:`target` is the folder to create."""

    def __init__(self, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New project")
        self.setObjectName("newProjectDialog")
        self._settings = settings
        self.name = QLineEdit()
        self.name.setObjectName("newProjectName")
        self.name.setPlaceholderText("e.g. Smith wedding 2025")
        self.location = QLineEdit(str(settings.value("newProjectLocation", str(default_location()))))
        self.location.setObjectName("newProjectLocation")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_clicked)
        where = QHBoxLayout()
        where.addWidget(self.location, 1)
        where.addWidget(browse)
        self.result_label = QLabel()
        self.result_label.setWordWrap(True)
        self.problem = QLabel()
        self.problem.setStyleSheet("color: #f0ad4e;")
        self.problem.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Name", self.name)
        form.addRow("Location", where)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Create")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("A project keeps a client's photos, references, masks and every output in one "
                                "folder, which you can move or back up as a whole."))
        layout.addLayout(form)
        layout.addWidget(self.result_label)
        layout.addWidget(self.problem)
        layout.addWidget(self.buttons)
        self.resize(560, 0)
        self.name.textChanged.connect(self._update)
        self.location.textChanged.connect(self._update)
        self._update()

    def target(self) -> Path | None:
        """``<location>/<name>``, or ``None`` while the name is empty."""
        name = folder_name(self.name.text())
        location = self.location.text().strip()
        return Path(location).expanduser() / name if name and location else None

    def project_name(self) -> str:
        return " ".join(self.name.text().split())

    def accept(self) -> None:
        if self._problem() is None:
            self._settings.setValue("newProjectLocation", self.location.text().strip())
            super().accept()

    def _problem(self) -> str | None:
        target = self.target()
        if target is None:
            return "Type a name for the project."
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            return f"{target} already exists; choose another name or location."
        return None

    def _update(self) -> None:
        target = self.target()
        self.result_label.setText(f"The project will be created in:\n{target}" if target else "")
        problem = self._problem()
        self.problem.setText(problem if problem and self.name.text().strip() else "")
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(problem is None)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Where should the project folder go?",
                                                  self.location.text().strip())
        if folder:
            self.location.setText(folder)
