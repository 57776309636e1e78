"""The Queue dock: a shoot's batches, each job's state, progress and worker, the time left, and the results
as a contact sheet sorted by identity score."""

from __future__ import annotations

import qtawesome as qta
from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)
from superqt import QFlowLayout

from ..core.identity_report import VERDICT_LABELS
from ..project import Project, queue
from ..project.batch_run import JobUpdate
from ..project.batches import batches
from .batch_controller import BatchController
from .thumbnails import load_thumbnails, set_icons
from .workers import run_in_background

COLUMNS = ("#", "Client → reference", "State", "Progress", "Worker", "Tries", "Why")
STATE_TEXT = {"queued": "waiting", "running": "running", "done": "done", "failed": "failed", "cancelled": "cancelled"}


class QueueDock(QDockWidget):
    """Reads the queue from the project; asks the :class:`BatchController` to change it."""

    new_batch_requested = Signal()
    output_selected = Signal(int)

    def __init__(self, controller: BatchController, parent: QWidget | None = None) -> None:
        super().__init__("Queue", parent)
        self.setObjectName("queueDock")
        self.controller = controller
        self.project: Project | None = None
        self.batch = QComboBox()
        self.batch.setObjectName("queueBatch")
        self.overall = QProgressBar()
        self.overall.setTextVisible(False)
        self.status = QLabel("No batch yet: New batch… runs clients × references in one go.")
        self.status.setWordWrap(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("queueTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.results = QListWidget()
        self.results.setObjectName("queueResults")
        self.results.setViewMode(QListWidget.ViewMode.IconMode)
        self.results.setIconSize(QSize(128, 128))
        self.results.setResizeMode(QListWidget.ResizeMode.Adjust)
        self.results.setWordWrap(True)
        tabs = QTabWidget()
        tabs.addTab(self.table, "Jobs")
        tabs.addTab(self.results, "Results by identity score")
        self.tabs = tabs
        self.buttons: dict[str, QPushButton] = {}
        row = QFlowLayout()  # wraps where the dock is narrow (1280×720) rather than widening the window
        for key, icon, text, tip in (
                ("new", "mdi6.playlist-plus", "New batch…", "Choose clients × references; the current settings "
                                                            "apply to every pair"),
                ("run", "mdi6.play", "Run", "Work through the waiting jobs (resumes paused batches)"),
                ("pause", "mdi6.pause", "Pause", "No new job starts; the running one goes back to waiting"),
                ("cancel", "mdi6.close", "Cancel", "Cancel the selected jobs"),
                ("cancel_all", "mdi6.close-box-multiple", "Cancel all", "Cancel every waiting or running job"),
                ("retry", "mdi6.refresh", "Retry failed", "Failed and cancelled jobs wait again"),
                ("up", "mdi6.arrow-up", "", "Move the selected job up the queue"),
                ("down", "mdi6.arrow-down", "", "Move the selected job down the queue"),
                ("sheet", "mdi6.view-grid", "Contact sheet…", "Save the batch's results as one PNG, best match "
                                                             "first")):
            button = QPushButton(qta.icon(icon), text)
            button.setToolTip(tip)
            self.buttons[key] = button
            row.addWidget(button)
        top = QHBoxLayout()
        top.addWidget(self.batch, 1)
        top.addWidget(self.overall, 2)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.status)
        layout.addWidget(tabs, 1)
        layout.addLayout(row)
        self.setWidget(body)
        self._rows: dict[int, int] = {}
        self._eta = -1.0
        self._thumbs = None

        self.buttons["new"].clicked.connect(self.new_batch_requested)
        self.buttons["run"].clicked.connect(lambda: controller.resume(self.batch_id()))
        self.buttons["pause"].clicked.connect(lambda: controller.pause(self.batch_id()))
        self.buttons["cancel"].clicked.connect(lambda: controller.cancel(self.selected_jobs()))
        self.buttons["cancel_all"].clicked.connect(lambda: controller.cancel(None))
        self.buttons["retry"].clicked.connect(lambda: controller.retry_failed(self.batch_id()))
        self.buttons["up"].clicked.connect(lambda: self._move(-1))
        self.buttons["down"].clicked.connect(lambda: self._move(1))
        self.buttons["sheet"].clicked.connect(self._on_sheet_clicked)
        self.batch.currentIndexChanged.connect(lambda _: self.refresh())
        self.results.itemActivated.connect(lambda item: self.output_selected.emit(item.data(Qt.ItemDataRole.UserRole)))
        controller.job_updated.connect(self._on_controller_job_updated)
        controller.queue_changed.connect(self.refresh)
        controller.eta_changed.connect(self._on_controller_eta_changed)
        controller.failed.connect(self._on_controller_failed)  # a method: the controller lives on its own thread

    # ------------------------------------------------------------------ state

    def set_project(self, project: Project | None) -> None:
        self.project = project
        self.controller.set_project(project)
        self.refresh()

    def batch_id(self) -> int | None:
        return self.batch.currentData()

    def select_batch(self, batch_id: int | None) -> None:
        """Show one batch (``None``: all of them)."""
        self.refresh()
        self.batch.setCurrentIndex(max(0, self.batch.findData(batch_id)))

    def selected_jobs(self) -> list[int]:
        rows = {index.row() for index in self.table.selectionModel().selectedRows()}
        return [self.table.item(r, 0).data(Qt.ItemDataRole.UserRole) for r in sorted(rows)]

    def refresh(self) -> None:
        """Rebuild from the project: batches, jobs in queue order, overall progress, results."""
        keep = self.batch_id()
        self.batch.blockSignals(True)
        self.batch.clear()
        self.batch.addItem("All batches", None)
        for item in batches(self.project) if self.project else []:
            self.batch.addItem(f"#{item.id} {item.name}" + (" (paused)" if item.paused else ""), item.id)
        self.batch.setCurrentIndex(max(0, self.batch.findData(keep)))
        self.batch.blockSignals(False)
        self.table.setRowCount(0)
        self._rows = {}
        if self.project is None:
            return
        names = {i.id: i.name for i in self.project.identities()}
        refs = {r.id: r.name for r in self.project.references()}
        for job in queue.queue_jobs(self.project, self.batch_id()):
            row = self.table.rowCount()
            self.table.insertRow(row)
            what = (f"training {names.get(job.identity_id, '?')}" if job.kind == "train"
                    else f"{names.get(job.identity_id, '?')} → {refs.get(job.reference_id, '?')}")
            cells = (str(job.id), what, STATE_TEXT.get(job.state, job.state), f"{job.progress:.0%}",
                     job.worker or "", str(job.attempts), job.error or "")
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if column == 0:
                    cell.setData(Qt.ItemDataRole.UserRole, job.id)
                if column == 6 and job.error:
                    cell.setToolTip(job.error)
                self.table.setItem(row, column, cell)
            self._rows[job.id] = row
        self._show_summary()
        self._refresh_results()

    def _show_summary(self) -> None:
        s = queue.summary(self.project, self.batch_id())
        if not s.total:
            self.status.setText("No batch yet: New batch… runs clients × references in one go.")
            self.overall.setValue(0)
            return
        self.overall.setRange(0, s.total)
        self.overall.setValue(s.done + s.failed + s.cancelled)
        # No time left while nothing runs (paused, or stopped): it would not be counting down.
        eta = f" · about {_duration(self._eta)} left" if self._eta >= 0 and s.left and s.running else ""
        extra = "".join(f" · {n} {what}" for n, what in ((s.failed, "failed"), (s.cancelled, "cancelled")) if n)
        self.status.setText(f"{s.done} of {s.total} done · {s.running} running · {s.queued} waiting{extra}{eta}")

    def _refresh_results(self) -> None:
        self.results.clear()
        batch_id = self.batch_id()
        if self.project is None or batch_id is None:
            return
        thumbs = []
        for output_id in queue.outputs_of(self.project, batch_id):
            out = self.project.output(output_id)
            verdict = VERDICT_LABELS.get(out.verdict, "no identity report")
            score = "" if out.identity_score is None else f" {out.identity_score:.2f}"
            item = QListWidgetItem(qta.icon("mdi6.image"), f"{out.identity_name} → {out.reference_name}\n"
                                                          f"{verdict}{score}")
            item.setData(Qt.ItemDataRole.UserRole, output_id)
            self.results.addItem(item)
            if out.thumb_path:
                thumbs.append((output_id, str(self.project.path_of(out.thumb_path))))
        if thumbs:
            self._thumbs = run_in_background(load_thumbnails, thumbs, 128, on_done=self._on_thumbs_loaded)

    def _on_thumbs_loaded(self, thumbs) -> None:
        set_icons(self.results, thumbs)

    # ------------------------------------------------------------------ slots

    def _on_controller_job_updated(self, update: JobUpdate) -> None:
        row = self._rows.get(update.job_id)
        if row is None:
            return
        if update.state == "progress":
            self.table.item(row, 3).setText(f"{update.fraction:.0%}")
            self.table.item(row, 4).setText(update.worker)
        elif update.state == "started":
            self.table.item(row, 2).setText("running")
            self.table.item(row, 4).setText(update.worker)

    def _on_controller_failed(self, message: str) -> None:
        self.status.setText(f"⚠ {message}")

    def _on_controller_eta_changed(self, seconds: float) -> None:
        self._eta = seconds
        if self.project is not None:
            self._show_summary()

    def _move(self, steps: int) -> None:
        for job_id in self.selected_jobs()[:1]:
            self.controller.move(job_id, steps)

    def _on_sheet_clicked(self) -> None:
        batch_id = self.batch_id()
        if self.project is None or batch_id is None:
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save the contact sheet", f"batch_{batch_id}.png", "PNG (*.png)")
        if path:
            from ..project.contact_sheets import write_contact_sheet

            outputs = [self.project.output(i) for i in queue.outputs_of(self.project, batch_id)]
            run_in_background(write_contact_sheet, self.project, outputs, path,
                              on_done=lambda p: self.status.setText(f"Contact sheet saved: {p}"))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"
