"""Model settings: each role with where it comes from and whether it is installed.

A missing base model leads here from the error dialog. Editing the choices in the app (and
downloading or installing packs) is the model manager's job; meanwhile the dialog names the
settings file and the command-line flags that set it.
"""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .workers import run_in_background

ROLE_LABELS = {"base": "Base model (SD 1.5)", "face_controlnet": "Face-geometry ControlNet",
               "light_controlnet": "Light ControlNet (tile)", "detail_controlnet": "Detail ControlNet (lineart)",
               "inpaint_controlnet": "Inpaint ControlNet"}


def model_states() -> tuple[str, list[tuple[str, str, str | None]]]:
    """(settings file, [(role, source, problem or None)]) — reads files only, loads no weights."""
    from ..core.diffusion.models import ROLES, check_all, load_settings, settings_path

    settings = load_settings()
    problems = check_all(settings)
    rows = []
    for role in ROLES:
        spec = settings.models.get(role)
        rows.append((role, getattr(spec, "source", None) or "(not set)", problems.get(role)))
    return str(settings_path()), rows


class ModelSettingsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Model settings")
        self.setObjectName("modelSettings")
        self.resize(820, 360)
        self.path_label = QLabel("Reading the model settings…")
        self.path_label.setWordWrap(True)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Role", "State", "Source / what to do"])
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        help_text = QLabel(
            "Set a model with <code>python main.py run --engine diffusion --base PATH --save-models</code> "
            "(and <code>--face-controlnet</code>, <code>--light-controlnet</code>, …): a diffusers folder, "
            "one <code>.safetensors</code> file, or a Hugging Face repo id already in the local cache. "
            "Pickle files (.ckpt, .bin, .pt) are refused.")
        help_text.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.open_folder = buttons.addButton("Open settings folder", QDialogButtonBox.ButtonRole.ActionRole)
        self.open_folder.setIcon(qta.icon("mdi6.folder-open"))
        buttons.rejected.connect(self.reject)
        self.open_folder.clicked.connect(self._on_open_folder_clicked)
        layout = QVBoxLayout(self)
        layout.addWidget(self.path_label)
        layout.addWidget(self.table)
        layout.addWidget(help_text)
        layout.addWidget(buttons)
        self._settings_file = ""
        self._worker = run_in_background(model_states, on_done=self._on_states_loaded,
                                         on_error=lambda exc: self.path_label.setText(f"Cannot read settings: {exc}"))

    def _on_states_loaded(self, states) -> None:
        self._settings_file, rows = states
        self.path_label.setText(f"Settings file: {self._settings_file}")
        self.table.setRowCount(len(rows))
        for row, (role, source, problem) in enumerate(rows):
            state = QTableWidgetItem(qta.icon("mdi6.check-circle", color="#5cb85c") if problem is None
                                     else qta.icon("mdi6.alert-circle", color="#d9534f"),
                                     "installed" if problem is None else "missing")
            self.table.setItem(row, 0, QTableWidgetItem(ROLE_LABELS.get(role, role)))
            self.table.setItem(row, 1, state)
            detail = QTableWidgetItem(source if problem is None else problem)
            detail.setToolTip(detail.text())  # the full message, however narrow the column
            self.table.setItem(row, 2, detail)
        self.table.resizeColumnsToContents()

    def _on_open_folder_clicked(self) -> None:
        from pathlib import Path

        if self._settings_file:
            folder = Path(self._settings_file).parent
            folder.mkdir(parents=True, exist_ok=True)
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))
