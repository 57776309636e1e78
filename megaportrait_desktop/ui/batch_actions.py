"""The window's side of batches: the Queue dock, the New batch dialog, and the controller that runs them."""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDialog

from ..core.errors import MegaPortraitError
from ..core.request import RunRequest
from ..project.batches import create_batch
from .batch_controller import BatchController
from .errors import show_error
from .new_batch_dialog import NewBatchDialog
from .queue_dock import QueueDock


class BatchActions(QObject):
    """Adds the Queue dock to ``window`` (a ``MainWindow``) and runs what it asks for."""

    def __init__(self, window, runner_factory=None) -> None:
        super().__init__(window)
        self.window = window
        self.controller = BatchController(runner_factory)
        self.dock = QueueDock(self.controller, window)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.dock)
        window.tabifyDockWidget(window.history, self.dock)
        window.history.raise_()
        self.dock.new_batch_requested.connect(self.new_batch)
        self.dock.output_selected.connect(window.history_actions.show)
        self.controller.queue_changed.connect(self._on_controller_queue_changed)

    def set_project(self, project) -> None:
        self.dock.set_project(project)

    def new_batch(self) -> int:
        """Ask which clients × references, queue them with the session's settings, and start; returns the batch id."""
        w = self.window
        if w.project is None:
            show_error(w, "New batch", "Open a project first (File → Open Project).")
            return 0
        settings = RunRequest(identity=("-",), reference="-", **w.session.settings_values()).settings()
        dialog = NewBatchDialog(w.project, settings["engine"], w)
        self.dialog = dialog
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return 0
        return self.queue(dialog.chosen(dialog.identities), dialog.chosen(dialog.references), settings,
                          dialog.name.text().strip() or None)

    def queue(self, identity_ids: list[int], reference_ids: list[int], settings: dict, name: str | None = None) -> int:
        w = self.window
        try:
            new = create_batch(w.project, identity_ids, reference_ids, settings, name)
        except MegaPortraitError as exc:
            show_error(w, "New batch", str(exc))
            return 0
        if new.skipped:
            show_error(w, "New batch", "Left out:\n" + "\n".join(new.skipped))
        self.dock.select_batch(new.batch_id)
        self.dock.show()
        self.dock.raise_()
        self.controller.start()
        return new.batch_id

    def _on_controller_queue_changed(self) -> None:
        if self.window.project is not None:
            self.window.history.refresh()  # a finished job is a new output

    def shutdown(self) -> None:
        self.controller.shutdown()
