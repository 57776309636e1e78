"""Settings → Compute: run batches on this computer or on a Ray cluster, with a connection test that lists
the cluster's nodes, their GPUs and workers, and whether their models are this computer's (by hash)."""

from __future__ import annotations

import importlib.util

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QGridLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .compute_settings import CLUSTER, LOCAL, ComputeChoice, load_choice, save_choice
from .workers import run_in_background

COLUMNS = ("Node", "Address", "GPUs", "Workers", "Models", "Version")
HINT = ("Every node needs MegaPortrait with its cluster extra (pip install -e '.[cluster]') and the studio's model "
        "pack; start the head with `ray start --head` and the others with `ray start --address=HEAD:6379` "
        "(README → Running batches on a Ray cluster).")


class ComputeDialog(QDialog):
    """Choose where batches run; :meth:`test` asks the cluster what it offers (on a worker thread)."""

    def __init__(self, choice: ComputeChoice | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Compute")
        self.setObjectName("computeDialog")
        self.setMinimumWidth(720)
        choice = choice or load_choice()
        self.local = QRadioButton("This computer (a worker per GPU)")
        self.cluster = QRadioButton("Ray cluster at")
        group = QButtonGroup(self)
        group.addButton(self.local)
        group.addButton(self.cluster)
        self.address = QLineEdit(choice.address)
        self.address.setPlaceholderText("ray://head-machine:10001")
        self.test_button = QPushButton("Test connection")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.nodes = QTableWidget(0, len(COLUMNS))
        self.nodes.setObjectName("computeNodes")
        self.nodes.setHorizontalHeaderLabels(COLUMNS)
        self.nodes.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.nodes.verticalHeader().hide()
        self.nodes.horizontalHeader().setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        hint = QLabel(HINT)
        hint.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        grid = QGridLayout()
        grid.addWidget(self.local, 0, 0, 1, 3)
        grid.addWidget(self.cluster, 1, 0)
        grid.addWidget(self.address, 1, 1)
        grid.addWidget(self.test_button, 1, 2)
        layout = QVBoxLayout(self)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addWidget(self.nodes)
        layout.addWidget(hint)
        layout.addWidget(buttons)

        self.ray_installed = importlib.util.find_spec("ray") is not None
        if not self.ray_installed:
            self.cluster.setEnabled(False)
            self.cluster.setToolTip("Ray is not installed: pip install -e '.[cluster]'")
            self.status.setText("Ray is not installed on this computer, so only this computer can run batches "
                                "(pip install -e '.[cluster]' adds it).")
        (self.cluster if choice.on_cluster and self.ray_installed else self.local).setChecked(True)
        self.cluster.toggled.connect(self._on_cluster_toggled)
        self.test_button.clicked.connect(self.test)
        self._on_cluster_toggled(self.cluster.isChecked())
        self.report = None
        self._worker = None

    def choice(self) -> ComputeChoice:
        return ComputeChoice(CLUSTER if self.cluster.isChecked() else LOCAL, self.address.text().strip())

    def test(self) -> None:
        """Connect and ask every node what it offers; the table fills when they answered."""
        from ..core.cluster import cluster_report

        self.test_button.setEnabled(False)
        self.nodes.setRowCount(0)
        self.report = None
        self.status.setText(f"Asking the cluster at {self.address.text().strip()}…")
        self._worker = run_in_background(cluster_report, self.address.text(), on_done=self._on_report,
                                         on_error=self._on_error)

    def accept(self) -> None:
        if self.cluster.isChecked() and not self.address.text().strip():
            self.status.setText("Give the cluster's address (ray://HEAD:10001), or choose this computer.")
            return
        save_choice(self.choice())
        super().accept()

    # ------------------------------------------------------------------ slots

    def _on_cluster_toggled(self, on: bool) -> None:
        self.address.setEnabled(on)
        self.test_button.setEnabled(on)

    def _on_report(self, report) -> None:
        self.report = report
        self.test_button.setEnabled(self.cluster.isChecked())
        self.nodes.setRowCount(len(report.nodes))
        for row, node in enumerate(report.nodes):
            agrees, why = node.agreement(report.desktop_models, report.version)
            cells = (node.name, node.address, str(node.gpus), str(node.workers), why, node.version or "?")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                if column == 4 and not agrees:
                    item.setForeground(Qt.GlobalColor.red)
                self.nodes.setItem(row, column, item)
        agreeing = len(report.agreeing())
        kind = {"GPU": "one per GPU", "CPU": "one CPU worker per node"}.get(report.resource,
                                                                           f"one per '{report.resource}' slot")
        self.status.setText(f"Connected to {report.address}: {len(report.nodes)} node(s), {report.workers} "
                            f"worker(s) ({kind}); {agreeing} of {len(report.nodes)} hold this computer's models. "
                            "A node with other models refuses the jobs that need this computer's.")

    def _on_error(self, exc: BaseException) -> None:
        self.test_button.setEnabled(self.cluster.isChecked())
        self.status.setText(f"Could not reach the cluster: {exc}")


def open_compute_dialog(window) -> bool:
    """Settings → Compute…: on OK, the next batch runs where the user chose; returns whether they chose."""
    dialog = ComputeDialog(load_choice(), window)
    window.compute_dialog = dialog  # tests reach it
    if dialog.exec() != QDialog.DialogCode.Accepted:
        return False
    window.batch_actions.controller.use_new_runner()
    window.statusBar().showMessage(f"Batches run on {dialog.choice().describe()}.", 8000)
    return True
