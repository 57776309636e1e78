"""The main window: docks around the stage view, and the flow between the session, the worker and History.

Data flows one way: widgets write the :class:`.session.Session`; its request goes to the live
preview and, on Run, to the GPU worker (through :class:`.job_runner.JobRunner`), which records the
output; typed outcomes come back as signals; the History dock reads the output from the project.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, QThreadPool, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QDockWidget, QLabel, QMainWindow, QMessageBox, QSizePolicy, QWidget
from superqt import QElidingLabel

from ..core.errors import ErrorKind
from ..core.imaging import load_image
from ..core.inputs import SceneCache
from ..core.stages import Stage
from ..project import Project, ProjectError
from .batch_actions import BatchActions
from .engine_check import EngineCheck
from .errors import show_error
from .history_actions import HistoryActions
from .history_dock import HistoryDock
from .identities_dock import IdentitiesDock
from .images import to_qimage
from .job_runner import JobRunner
from .live_actions import LiveActions
from .mask_actions import MaskActions
from .mask_editor import MaskEditor
from .menus import build_actions
from .pipeline_panel import PipelinePanel
from .project_actions import ProjectActions
from .recent import forget, recent_projects, remember
from .references_dock import ReferencesDock
from .restore import restore_brush, restore_layout, restore_view, save_layout, save_view
from .session import Session
from .shortcuts import finish_actions
from .stage_view import REFERENCE_FULL, StageView
from .workers import GpuWorker, run_in_background

log = logging.getLogger("megaportrait.ui")


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("MegaPortrait Desktop")
        self.setObjectName("mainWindow")
        self.resize(1500, 950)
        self.project: Project | None = None
        self.last_output_id = 0
        self._workers: list = []
        self.session = Session()
        self.worker = GpuWorker()
        self.scenes = SceneCache()  # the reference read once for the preview and the run
        self.jobs = JobRunner(self.worker, self.scenes)
        self.stage_view = StageView()
        self.canvas = self.stage_view.canvas
        self.setCentralWidget(self.stage_view)

        self.identities = IdentitiesDock(self)
        self.references = ReferencesDock(self)
        self.history = HistoryDock(self)
        self.panel = PipelinePanel(self.session)
        self.mask_editor = MaskEditor(self.canvas)
        self.pipeline_dock = self._dock("Pipeline", "pipelineDock", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.mask_dock = self._dock("Mask", "maskDock", self.mask_editor, Qt.DockWidgetArea.RightDockWidgetArea)
        for area, dock in ((Qt.DockWidgetArea.LeftDockWidgetArea, self.identities),
                           (Qt.DockWidgetArea.LeftDockWidgetArea, self.references),
                           (Qt.DockWidgetArea.BottomDockWidgetArea, self.history)):
            self.addDockWidget(area, dock)
        # Side docks run the full height; History sits under the canvas only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.history], [190], Qt.Orientation.Vertical)
        self.resizeDocks([self.pipeline_dock, self.mask_dock], [560, 340], Qt.Orientation.Vertical)
        # At 1280 px wide the centre keeps room for every stage tab and the before/after controls.
        self.resizeDocks([self.pipeline_dock, self.identities], [330, 260], Qt.Orientation.Horizontal)
        self.history_actions = HistoryActions(self)
        self.project_actions = ProjectActions(self)
        self.live = LiveActions(self)
        self.batch_actions = BatchActions(self)
        self.masks = MaskActions(self)

        build_actions(self)
        finish_actions(self)  # shortcuts named in button tooltips; Cancel enabled only while a job runs
        self.engine_check = EngineCheck(self, self.panel.engine_note)
        self.job_label = QElidingLabel("Idle")  # one line, elided: a long message never widens the window
        self.job_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.zoom_label = QLabel("")
        self.device_label = QLabel("Device: checking…")  # until the probe has run (after the window shows)
        self.statusBar().addWidget(self.job_label, 1)
        self.statusBar().addPermanentWidget(self.zoom_label)
        self.statusBar().addPermanentWidget(self.device_label)
        self._connect()
        self.update_undo_actions()
        self.project_actions.update_recent_menu()
        restore_layout(self)
        restore_brush(self)

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        # The panels scroll their settings themselves (a laptop screen), keeping their buttons in view.
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _connect(self) -> None:
        self.identities.identity_changed.connect(lambda i: self.session.select(identity_id=i))
        self.identities.train_requested.connect(self._on_identities_train_requested)
        self.references.reference_changed.connect(self._on_references_reference_changed)
        self.panel.run_requested.connect(self.run_pipeline)
        self.panel.cancel_requested.connect(self.cancel_job)
        self.stage_view.stage_changed.connect(self._on_stage_view_stage_changed)
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z:.0%}"))
        self.mask_editor.mask_changed.connect(self.update_undo_actions)
        self.mask_editor.paint_toggle.toggled.connect(self._on_mask_paint_toggled)
        self.jobs.started.connect(lambda job, label: self.job_label.setText(f"Running: {label}"))
        self.worker.queue_changed.connect(self._on_worker_queue_changed)  # a method, so on the GUI thread
        self.jobs.preview.connect(lambda job, image: self.canvas.set_image(image))  # via jobs: the GUI thread
        self.jobs.run_progress.connect(self.panel.show_progress)
        self.jobs.run_finished.connect(self._on_jobs_run_finished)
        self.jobs.training_progress.connect(self._on_jobs_training_progress)
        self.jobs.training_finished.connect(self._on_jobs_training_finished)
        self.jobs.failed.connect(self._on_jobs_failed)
        self.jobs.cancelled.connect(self._on_jobs_cancelled)

    # ------------------------------------------------------------------ projects

    def open_project(self, root: str | Path) -> bool:
        """Open ``root`` for writing (this window holds its lock until another project opens or the app quits)."""
        try:
            project = Project.open(root, program="MegaPortrait Desktop")
        except ProjectError as exc:
            if not (Path(root) / "project.db").is_file() and str(root) in recent_projects():
                forget(root)  # gone (moved, deleted, an unplugged drive): off the list, and say so
                self.project_actions.update_recent_menu()
                self.statusBar().showMessage(f"{root} is no longer there; it was removed from Open Recent.", 15_000)
                return False
            show_error(self, "Open project", str(exc))
            return False
        if self.project is not None:
            self._leave_project()
            self.project.close()
        self.project = self.jobs.project = project
        self.scenes.clear()  # the previous project's reference is no longer needed in memory
        self.setWindowTitle(f"{project.name} — MegaPortrait Desktop")
        remember(project.root)
        self.project_actions.update_recent_menu()
        self.show_reference_only(None)  # nothing of the previous project stays on screen: no image, no mask
        self.mask_editor.clear()
        self.update_undo_actions()
        self.session.set_project(project)
        for dock in (self.identities, self.references, self.history_actions, self.history, self.batch_actions):
            dock.set_project(project)
        restore_view(self, project)  # the selection, output, stage tab and History view it was left with
        if project.interrupted_jobs():
            self.project_actions.show_interrupted_jobs()
        return True

    # ------------------------------------------------------------------ selection, mask and preview

    def _on_references_reference_changed(self, reference_id: int) -> None:
        self.session.select(reference_id=reference_id)
        self.show_reference_only(None)
        if not reference_id:
            self.mask_editor.clear()
            return
        path = self.project.path_of(self.project.reference(reference_id).path)

        def loaded(image) -> None:
            if self.session.reference_id == reference_id:  # still the one selected
                self.stage_view.update_images({REFERENCE_FULL: image})
        self.track(run_in_background(lambda: to_qimage(load_image(path).pixels), on_done=loaded,
                                     on_error=lambda exc: show_error(self, "Reference", str(exc))))
        self.load_mask()

    def show_reference_only(self, reference=...) -> None:
        """Drop every stage image (keeping the reference, or the one given); show the reference."""
        keep = self.stage_view.images.get(REFERENCE_FULL) if reference is ... else reference
        self.stage_view.clear(keep)
        self.stage_view.show_stage(REFERENCE_FULL)

    def load_mask(self) -> None:
        """Show the session's mask version in the mask editor (decoded off the GUI thread)."""
        self.masks.load()

    def save_mask(self) -> int | None:
        """Save the edited mask now, on this thread (quitting; the Save button saves on a worker)."""
        return self.masks.save_now()

    def _leave_project(self) -> None:  # remember its view; carry out the deletions that could still be undone
        save_view(self, self.project)
        self.history_actions.set_project(None)

    def _on_mask_paint_toggled(self, on: bool) -> None:
        if on:
            self.stage_view.show_stage(REFERENCE_FULL)  # paint where the mask lives, never over a result
        self.update_overlay()

    def _on_stage_view_stage_changed(self, key: str) -> None:
        if key != REFERENCE_FULL and self.mask_editor.paint_toggle.isChecked():
            self.mask_editor.paint_toggle.setChecked(False)  # a result is looked at, not painted on
        self.update_overlay()

    def update_undo_actions(self) -> None:
        painter = self.mask_editor.painter
        self.act_undo.setEnabled(bool(painter and painter.can_undo))
        self.act_redo.setEnabled(bool(painter and painter.can_redo))

    def update_overlay(self) -> None:
        # The mask is drawn over the reference only, where it is edited: never over a result.
        on_reference = self.stage_view.current() == REFERENCE_FULL
        self.canvas.set_overlay_visible(on_reference and self.mask_editor.show_overlay.isChecked())

    # ------------------------------------------------------------------ runs

    def run_pipeline(self, stage: str = "all") -> int:
        """Queue a run of the session's request up to ``stage`` (or all of it); returns the worker's job id
        (0 while an edited mask is saved first: the run is queued once it is)."""
        if self.project is None:
            show_error(self, "Run", "Open a project first (File → Open Project).")
            return 0
        if self.mask_editor.dirty and self.masks.save(then=lambda: self._submit_run(stage),
                                                      failed=lambda: self.panel.show_stopped("Not run.")):
            self.panel.set_running(True, "Saving the mask…")
            return 0
        return self._submit_run(stage)

    def _submit_run(self, stage: str) -> int:
        request = self.session.request
        if request is None:
            self.panel.show_stopped("Not run.")
            show_error(self, "Run", "Choose an identity with photos and a reference first.")
            return 0
        until = None if stage in ("all", "harmonize") else stage
        job_id = self.jobs.submit_run(request, self.session.identity_id, self.session.reference_id, until)
        self.panel.set_running(True, f"{'Run all' if until is None else f'Stage: {until}'} queued")
        return job_id

    def cancel_job(self) -> None:
        self.worker.cancel()
        if self.worker.busy:
            self.panel.show_cancelling()

    def _on_identities_train_requested(self, identity_id: int) -> None:
        if self.project is None or not self.project.identity_photos(identity_id):
            show_error(self, "Train identity", "Add photos of the client to this identity first.")
            return
        self.jobs.submit_training(identity_id)
        self.identities.refresh({i: 0.0 for i in self.jobs.training_identities()})

    @Slot(object)
    def _on_jobs_run_finished(self, outcome) -> None:
        result, output_id = outcome.result, outcome.output_id
        images = {**result.stages, **outcome.images}  # full-size ones already converted on the worker
        self.last_output_id = output_id
        self.history_actions.shown_output = output_id
        done = Stage.FINAL if result.final is not None else (Stage.SHADED if Stage.SHADED in images else Stage.B)
        self.stage_view.update_images(images, show=done)
        if output_id:
            self.history.refresh()  # first: the status line claims only what the History already shows
        score = "" if result.identity_score is None else f", identity score {result.identity_score:.3f}"
        # The time the user waited: from the click to this moment, saving and showing included.
        self.panel.show_done(f"Done in {self.panel.elapsed():.1f} s{score}." +
                             (f" Saved to History as #{output_id}." if output_id else ""))
        self.job_label.setText("Idle")
        if result.request.engine == "diffusion":
            self.probe_device()

    def _on_worker_queue_changed(self, waiting: int) -> None:
        if waiting:
            self.statusBar().showMessage(f"{waiting} more job(s) queued.", 4000)

    def _on_jobs_training_progress(self, identity_id: int, fraction: float, message: str) -> None:
        self.job_label.setText(f"Training: {message or f'{fraction:.0%}'}")
        self.identities.show_training(identity_id, fraction)

    def _on_jobs_training_finished(self, outcome) -> None:
        self.identities.refresh({i: 0.0 for i in self.jobs.training_identities()})
        self.job_label.setText("Idle")
        self.statusBar().showMessage("Training finished: the identity's LoRA is saved in the project.", 8000)
        self.session.request_changed.emit()  # the next run uses the new LoRA
        self.probe_device()

    def _on_jobs_failed(self, training: bool, failure) -> None:
        if training:
            self.identities.refresh({i: 0.0 for i in self.jobs.training_identities()})
        else:
            self.panel.show_stopped("Failed: " + failure.message)
        self.job_label.setText("Idle")
        action = ("Open the model manager", self.show_model_settings) if failure.kind is ErrorKind.MODELS else None
        self.last_error = show_error(self, "Training failed" if training else "The run failed",
                                     f"{failure.message}\n\n{failure.remedy}", failure.details, action)

    def _on_jobs_cancelled(self, training: bool) -> None:
        self.job_label.setText("Idle")
        if training:
            self.identities.refresh({i: 0.0 for i in self.jobs.training_identities()})
            self.statusBar().showMessage("Training cancelled; it resumes from its last checkpoint next time.", 8000)
        else:
            self.panel.show_stopped("Cancelled; nothing was recorded.")

    def attach_error_handler(self, errors) -> None:
        """Show what the app-wide handler (:class:`.error_handler.UnexpectedErrors`) catches."""
        errors.occurred.connect(self._on_errors_occurred)

    @Slot(str, str)
    def _on_errors_occurred(self, message: str, details: str) -> None:
        """Anything no other handler caught (see :mod:`.error_handler`): say so, never claim success."""
        self.job_label.setText(f"Error: {message}")
        self.panel.show_stopped(f"Error: {message}")
        self.last_error = show_error(
            self, "Something went wrong",
            f"{message}\n\nWhat is already saved in the project is safe. If the window shows something odd, "
            "reopen the project (File → Open Recent). The details are in megaportrait.log.", details)

    # ------------------------------------------------------------------ background work

    def track(self, worker) -> None:
        """Hold a background worker for the window's life (a running one must not be garbage-collected)."""
        self._workers.append(worker)

    def probe_device(self) -> None:
        """Fill the status bar's device and GPU memory, off the GUI thread (torch loads there)."""
        from .device_probe import probe_device

        self.track(run_in_background(probe_device, on_done=self.device_label.setText,
                                     on_error=lambda exc: self.device_label.setText("Device: unknown")))

    # ------------------------------------------------------------------ models, about, layout, quit

    def offer_models(self) -> None:
        from .device_probe import offer_models

        offer_models(self)

    def show_model_settings(self) -> None:
        from .model_manager import ModelManagerDialog

        self.model_dialog = ModelManagerDialog(self)
        self.model_dialog.states_changed.connect(
            lambda _: (self.probe_device(), self.live.models_changed(), self.engine_check.check()))
        self.model_dialog.show()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.worker.busy:
            answer = QMessageBox.question(self, "Quit", "A job is running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Stop every thread and let go of the project (quitting, or a test or self-test ending)."""
        if self.mask_editor.dirty:
            self.save_mask()  # nothing the user painted is lost
        save_layout(self)
        self.worker.shutdown()
        self.live.shutdown()
        self.batch_actions.shutdown()
        self.jobs.drop_queued()
        # Imports, thumbnails and previews still running report to this window: let them finish first.
        QThreadPool.globalInstance().waitForDone(10_000)
        if self.project is not None:
            self._leave_project()
            self.session.set_project(None)
            for dock in (self.identities, self.references, self.history, self.batch_actions):
                dock.set_project(None)
            self.project.close()
            self.project = self.jobs.project = None
