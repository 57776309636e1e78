"""The main window: menus, toolbar, docks, the canvas with its stage switcher, and the job flow.

Data flows one way: the project and the panels build a RunRequest; the GPU worker runs it and
records the output; its signals bring the result back; the History dock reads it from the project.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import qtawesome as qta
from PySide6.QtCore import Qt, QThreadPool, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QScrollArea,
    QSlider,
    QTabBar,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled

from .. import __version__
from ..core import frequency
from ..core.errors import MegaPortraitError
from ..core.imaging import load_image, to_float, to_uint8
from ..core.request import DiffusionParams, RunRequest
from ..project import Project, ProjectError
from .canvas import ImageCanvas
from .errors import action_for, show_error, show_over
from .history_dock import HistoryDock
from .identities_dock import IdentitiesDock
from .images import to_qimage
from .interrupted_jobs import InterruptedJobsDialog
from .jobs import queue_run, queue_training, request_of, run_job, training_job
from .mask_editor import MaskEditor
from .pipeline_panel import PipelinePanel
from .recent import forget, recent_projects, remember, settings
from .references_dock import ReferencesDock
from .workers import GpuWorker, Job, run_in_background

log = logging.getLogger("megaportrait.ui")

#: The stage switcher: label and the RunResult stage it shows ("reference" = the full reference).
STAGE_TABS = (("Reference", "full_reference"), ("A", "A"), ("B", "B"), ("Light map", "light_map"),
              ("HF-map", "hf_map"), ("Shaded", "shaded"), ("Pasted", "pasted"), ("Final", "final"))
class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("MegaPortrait Desktop")
        self.setObjectName("mainWindow")
        self.resize(1500, 950)
        self.project: Project | None = None
        self.stage_images: dict[str, np.ndarray] = {}
        self.reference_picture = None
        self.live: frequency.FrequencySeparation | None = None
        self.current_job = 0
        self.last_output_id = 0
        self._workers: list = []
        self.training: dict[int, float] = {}       # identity id → progress of its running training
        self.training_jobs: dict[int, int] = {}    # job id → identity id
        self.project_jobs: dict[int, int] = {}     # worker job id → the project's jobs-table row

        self.worker = GpuWorker()
        self.canvas = ImageCanvas()
        self.stage_bar = QTabBar()
        for label, _ in STAGE_TABS:
            self.stage_bar.addTab(label)
        self.compare = QCheckBox("Before/after")
        self.split = QSlider(Qt.Orientation.Horizontal)
        self.split.setRange(0, 100)
        self.split.setValue(50)
        self.split.setMaximumWidth(160)
        self.split.setEnabled(False)
        top = QHBoxLayout()
        top.addWidget(self.stage_bar, 1)
        top.addWidget(self.compare)
        top.addWidget(self.split)
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        self.setCentralWidget(central)

        self.identities = IdentitiesDock(self)
        self.references = ReferencesDock(self)
        self.history = HistoryDock(self)
        self.panel = PipelinePanel()
        self.mask_editor = MaskEditor(self.canvas)
        self.pipeline_dock = self._dock("Pipeline", "pipelineDock", self.panel, Qt.DockWidgetArea.RightDockWidgetArea)
        self.mask_dock = self._dock("Mask", "maskDock", self.mask_editor, Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.identities)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.references)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.history)
        # Side docks run the full height; History sits under the canvas only.
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.resizeDocks([self.history], [190], Qt.Orientation.Vertical)
        self.resizeDocks([self.pipeline_dock, self.mask_dock], [560, 340], Qt.Orientation.Vertical)
        self.resizeDocks([self.pipeline_dock], [330], Qt.Orientation.Horizontal)

        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._restore_layout()

    # ------------------------------------------------------------------ construction

    def _dock(self, title: str, name: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(name)
        scroll = QScrollArea()  # the panels scroll rather than force a tall window on a laptop screen
        scroll.setWidget(widget)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        dock.setWidget(scroll)
        self.addDockWidget(area, dock)
        return dock

    def _action(self, text: str, icon: str | None, slot, shortcut=None) -> QAction:
        action = QAction(qta.icon(icon) if icon else qta.icon("mdi6.circle-small"), text, self)
        if shortcut is not None:
            action.setShortcut(shortcut)
        action.triggered.connect(slot)
        return action

    def _build_actions(self) -> None:
        self.act_new = self._action("&New Project…", "mdi6.folder-plus", self.new_project, QKeySequence.StandardKey.New)
        self.act_open = self._action("&Open Project…", "mdi6.folder-open", self.open_project_dialog,
                                     QKeySequence.StandardKey.Open)
        self.act_export = self._action("&Export Output…", "mdi6.export", lambda: self.export_output(),
                                       QKeySequence("Ctrl+E"))
        self.act_quit = self._action("&Quit", "mdi6.exit-to-app", self.close, QKeySequence.StandardKey.Quit)
        self.act_undo = self._action("&Undo", "mdi6.undo", self.mask_editor.undo, QKeySequence.StandardKey.Undo)
        self.act_redo = self._action("&Redo", "mdi6.redo", self.mask_editor.redo, QKeySequence("Ctrl+Shift+Z"))
        self.act_fit = self._action("&Fit", "mdi6.fit-to-screen", self.canvas.fit, QKeySequence("Ctrl+0"))
        self.act_100 = self._action("&100 %", "mdi6.magnify", self.canvas.actual_size, QKeySequence("Ctrl+1"))
        self.act_run = self._action("Run &all", "mdi6.play", lambda: self.run_pipeline("all"), QKeySequence("Ctrl+R"))
        self.act_cancel = self._action("&Cancel", "mdi6.stop", self.cancel_job, QKeySequence("Esc"))
        self.act_models = self._action("&Model Manager…", "mdi6.cube-outline", self.show_model_settings)
        self.act_about = self._action("&About MegaPortrait", "mdi6.information-outline", self.show_about)

        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        file_menu.addActions([self.act_new, self.act_open])
        self.recent_menu = file_menu.addMenu("Open &Recent")
        file_menu.addSeparator()
        file_menu.addAction(self.act_export)
        file_menu.addSeparator()
        file_menu.addAction(self.act_quit)
        edit = menu.addMenu("&Edit")
        edit.addActions([self.act_undo, self.act_redo])
        view = menu.addMenu("&View")
        view.addActions([self.act_fit, self.act_100])
        view.addSeparator()
        for dock in (self.identities, self.references, self.history, self.pipeline_dock, self.mask_dock):
            view.addAction(dock.toggleViewAction())
        models = menu.addMenu("&Models")
        models.addAction(self.act_models)
        help_menu = menu.addMenu("&Help")
        help_menu.addAction(self.act_about)

        toolbar = self.addToolBar("Main")
        toolbar.setObjectName("mainToolbar")
        toolbar.addActions([self.act_new, self.act_open, self.act_export])
        toolbar.addSeparator()
        toolbar.addActions([self.act_undo, self.act_redo])
        toolbar.addSeparator()
        toolbar.addActions([self.act_fit, self.act_100])
        toolbar.addSeparator()
        toolbar.addActions([self.act_run, self.act_cancel])
        self._update_recent_menu()

    def _build_status_bar(self) -> None:
        self.device_label = QLabel(_device_summary())
        self.job_label = QLabel("Idle")
        self.zoom_label = QLabel("")
        bar = self.statusBar()
        bar.addWidget(self.job_label, 1)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.device_label)

    def _connect(self) -> None:
        self.identities.identity_changed.connect(self._on_identities_identity_changed)
        self.identities.import_requested.connect(self.import_identity_photos)
        self.identities.train_requested.connect(self._on_identities_train_requested)
        self.references.reference_changed.connect(self._on_references_reference_changed)
        self.references.import_requested.connect(self.import_references)
        self.history.output_selected.connect(self._on_history_output_selected)
        self.history.recall_requested.connect(self.recall_settings)
        self.history.compare_requested.connect(self._on_history_compare_requested)
        self.history.export_requested.connect(self.export_output)
        self.history.delete_requested.connect(self._on_history_delete_requested)
        self.panel.run_requested.connect(self.run_pipeline)
        self.panel.cancel_requested.connect(self.cancel_job)
        self.panel.shading_changed.connect(self._on_panel_shading_changed)
        self.stage_bar.currentChanged.connect(self._on_stage_bar_changed)
        self.compare.toggled.connect(self._on_compare_toggled)
        self.split.valueChanged.connect(lambda v: self.canvas.set_split(v / 100))
        self.canvas.zoom_changed.connect(lambda z: self.zoom_label.setText(f"{z:.0%}"))
        self.mask_editor.save_requested.connect(self.save_mask)
        self.mask_editor.paint_toggle.toggled.connect(self._on_mask_paint_toggled)
        self.worker.started.connect(self._on_worker_started)
        self.worker.progress.connect(self._on_worker_progress)
        self.worker.preview.connect(self._on_worker_preview)
        self.worker.finished.connect(self._on_worker_finished)
        self.worker.failed.connect(self._on_worker_failed)
        self.worker.cancelled.connect(self._on_worker_cancelled)
        # Live preview: at most one recomputation every 60 ms while a slider moves.
        self._live_update = qthrottled(self._update_live_preview, timeout=60, leading=True)

    # ------------------------------------------------------------------ projects

    def open_project(self, root: str | Path) -> bool:
        """Open ``root`` for writing (this window holds its lock until another project opens or the app quits)."""
        try:
            project = Project.open(root, program="MegaPortrait Desktop")
        except ProjectError as exc:
            if not (Path(root) / "project.db").is_file() and str(root) in recent_projects():
                forget(root)  # gone (moved, deleted, an unplugged drive): off the list, and say so
                self._update_recent_menu()
                self.statusBar().showMessage(f"{root} is no longer there; it was removed from Open Recent.", 15_000)
                return False
            show_error(self, "Open project", str(exc))
            return False
        if self.project is not None:
            self.project.close()
        self.project = project
        self.setWindowTitle(f"{project.name} — MegaPortrait Desktop")
        remember(project.root)
        self._update_recent_menu()
        self.identities.set_project(project)
        self.references.set_project(project)
        self.history.set_project(project)
        if project.interrupted_jobs():
            self.show_interrupted_jobs()
        return True

    def show_interrupted_jobs(self) -> None:
        """List the jobs a previous session left queued or running, with Run again / Discard."""
        self.interrupted_dialog = InterruptedJobsDialog(self.project, self.project.interrupted_jobs(), self)
        self.interrupted_dialog.run_again_requested.connect(self._on_interrupted_run_again)
        self.interrupted_dialog.discard_requested.connect(self._on_interrupted_discard)
        show_over(self, self.interrupted_dialog)

    def _on_interrupted_run_again(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            job = self.project.job(job_id)
            try:
                if job.kind == "train":
                    self._submit_training(job.identity_id, job_id)
                else:
                    payload = job.payload
                    self._submit_run(request_of(self.project, payload), payload["identity_id"],
                                     payload["reference_id"], payload.get("until"), job_id)
            except MegaPortraitError as exc:
                self.project.update_job(job_id, state="failed", error=str(exc))
                show_error(self, "Run again", f"Job #{job_id} cannot run again: {exc}")

    def _on_interrupted_discard(self, job_ids: list[int]) -> None:
        for job_id in job_ids:
            self.project.discard_job(job_id)
        self.statusBar().showMessage(f"Discarded {len(job_ids)} interrupted job(s).", 5000)

    def new_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose an empty folder for the new project")
        if not folder:
            return
        try:
            Project.create(folder, program="MegaPortrait Desktop").close()
        except ProjectError as exc:
            show_error(self, "New project", str(exc))
            return
        self.open_project(folder)

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a MegaPortrait project folder")
        if folder:
            self.open_project(folder)

    def _update_recent_menu(self) -> None:
        self.recent_menu.clear()
        for root in recent_projects():
            self.recent_menu.addAction(root, lambda r=root: self.open_project(r))
        self.recent_menu.setEnabled(bool(self.recent_menu.actions()))

    # ------------------------------------------------------------------ selection

    @Slot(int)
    def _on_identities_identity_changed(self, identity_id: int) -> None:
        self._prepare_live_preview()

    @Slot(int)
    def _on_references_reference_changed(self, reference_id: int) -> None:
        self.stage_images = {}
        self.live = None
        if not reference_id or self.project is None:
            self.mask_editor.clear()
            return
        ref = self.project.reference(reference_id)
        try:
            self.reference_picture = load_image(self.project.path_of(ref.path))
        except MegaPortraitError as exc:
            show_error(self, "Reference", str(exc))
            return
        self.stage_images["full_reference"] = self.reference_picture.rgb8()
        self._load_mask(reference_id)
        self.stage_bar.setCurrentIndex(0)
        self._show_stage()
        self._prepare_live_preview()

    def _load_mask(self, reference_id: int) -> None:
        masks = self.project.masks(reference_id)
        if not masks:
            self.mask_editor.clear()
            return
        auto = load_image(self.project.path_of(masks[0].path)).pixels[..., 0]
        current = load_image(self.project.path_of(masks[-1].path)).pixels[..., 0]
        self.mask_editor.load(current, auto)

    def save_mask(self) -> int | None:
        reference_id = self.references.current_id()
        painter = self.mask_editor.painter
        if not reference_id or painter is None or self.project is None:
            return None
        version = self.project.save_mask(reference_id, painter.mask)
        self.mask_editor.dirty = False
        self.statusBar().showMessage(f"Mask saved (version {version}).", 4000)
        return version

    # ------------------------------------------------------------------ live preview

    def _current_request(self) -> RunRequest | None:
        if self.project is None:
            return None
        identity_id, reference_id = self.identities.current_id(), self.references.current_id()
        if not identity_id or not reference_id:
            return None
        photos = self.project.identity_photos(identity_id)
        if not photos:
            return None
        ref = self.project.reference(reference_id)
        mask = self.project.current_mask(reference_id)
        user_mask = mask is not None and mask.source == "user"
        identity = self.project.identity(identity_id)
        # The diffusion engine uses the identity's own LoRA and trigger token.
        diffusion = DiffusionParams(lora=str(self.project.path_of(identity.lora_path)) if identity.lora_path else None,
                                    prompt=f"a photo of {identity.trigger_token} person")
        return RunRequest(identity=tuple(str(self.project.path_of(p.path)) for p in photos),
                          reference=str(self.project.path_of(ref.path)), face_index=ref.chosen_face,
                          mask=str(self.project.path_of(mask.path)) if user_mask else None, diffusion=diffusion,
                          **self.panel.request_params())

    def _prepare_live_preview(self) -> None:
        """Compute the pair (classic, cheap) off the GUI thread so the shading sliders preview live."""
        request = self._current_request()
        if request is None:
            return
        from ..core.pipeline import run

        self._track(run_in_background(run, request.replace(engine="classic"), until="identity",
                                      on_done=self._on_pair_ready, on_error=lambda exc: None))

    def _on_pair_ready(self, result) -> None:
        for key in ("A", "B"):
            self.stage_images[key] = result.stages[key]
        self.live = frequency.FrequencySeparation(to_float(result.stages["A"]), to_float(result.stages["B"]))
        self._update_live_preview()

    def _on_panel_shading_changed(self) -> None:
        self._live_update()

    def _update_live_preview(self) -> None:
        if self.live is None:
            return
        params = self.panel.request_params()["shading"]
        light, hf, shaded = self.live.update(params.light_cutoff, params.hf_cutoff, params.detail_weight)
        self.stage_images["light_map"] = to_uint8(light)
        self.stage_images["hf_map"] = to_uint8(frequency.hf_display(hf))
        self.stage_images["shaded"] = to_uint8(shaded)
        if STAGE_TABS[self.stage_bar.currentIndex()][1] in {"light_map", "hf_map", "shaded"}:
            self._show_stage()

    # ------------------------------------------------------------------ canvas

    def _on_stage_bar_changed(self, index: int) -> None:
        self._show_stage()

    def _show_stage(self) -> None:
        key = STAGE_TABS[self.stage_bar.currentIndex()][1]
        image = self.stage_images.get(key)
        if image is None:
            image = self.stage_images.get("full_reference")
        if image is None:
            return
        self.canvas.set_image(to_qimage(image))
        # The mask is drawn over the reference (where it is edited), not over results.
        editing = key == "full_reference" or self.mask_editor.paint_toggle.isChecked()
        self.canvas.set_overlay_visible(editing and key in {"full_reference", "pasted", "final"}
                                        and self.mask_editor.show_overlay.isChecked())
        self._on_compare_toggled(self.compare.isChecked())

    def _on_compare_toggled(self, on: bool) -> None:
        self.split.setEnabled(on)
        before = self.stage_images.get("full_reference")
        after_key = STAGE_TABS[self.stage_bar.currentIndex()][1]
        if on and before is not None and after_key in {"pasted", "final"}:
            self.canvas.set_before(to_qimage(before))
        else:
            self.canvas.set_before(None)

    def _on_mask_paint_toggled(self, on: bool) -> None:
        if on and STAGE_TABS[self.stage_bar.currentIndex()][1] not in {"full_reference", "pasted", "final"}:
            self.show_stage("full_reference")  # paint where the mask lives: on the full-size image
        self._show_stage()

    def show_stage(self, key: str) -> None:
        for index, (_, stage) in enumerate(STAGE_TABS):
            if stage == key:
                self.stage_bar.setCurrentIndex(index)

    # ------------------------------------------------------------------ runs

    def run_pipeline(self, stage: str = "all") -> int:
        """Queue a run up to ``stage`` (or all of it); returns the job id (0 if nothing to run)."""
        if self.project is None:
            show_error(self, "Run", "Open a project first (File → Open Project).")
            return 0
        if self.mask_editor.dirty:
            self.save_mask()
        request = self._current_request()
        if request is None:
            show_error(self, "Run", "Choose an identity with photos and a reference first.")
            return 0
        until = None if stage in ("all", "harmonize") else stage
        return self._submit_run(request, self.identities.current_id(), self.references.current_id(), until)

    def _submit_run(self, request: RunRequest, identity_id: int, reference_id: int, until: str | None,
                    project_job: int | None = None) -> int:
        """Queue a run: written to the project's jobs table first, then handed to the worker."""
        if project_job is None:
            project_job = queue_run(self.project, request, identity_id, reference_id, until)
        else:
            self.project.resume_job(project_job)
        job = run_job(self.project, project_job, request, identity_id, reference_id, until)
        label = "Run all" if until is None else f"Stage: {until}"
        self.current_job = self.worker.submit(Job(label=label, run=job))
        self.project_jobs[self.current_job] = project_job
        self.panel.set_running(True, f"{label} queued")
        return self.current_job

    def _track(self, worker) -> None:
        """Hold every background worker for the window's life: a queued or running one must not be
        garbage-collected (the list stays small: one entry per import, preview or probe)."""
        self._workers.append(worker)

    def probe_device(self) -> None:
        """Fill the status bar's device and GPU memory, off the GUI thread (torch loads there)."""
        worker = run_in_background(probe_device, on_done=self.device_label.setText,
                                   on_error=lambda exc: self.device_label.setText("Device: unknown"))
        self._track(worker)

    def cancel_job(self) -> None:
        self.worker.cancel()

    @Slot(int, str)
    def _on_worker_started(self, job_id: int, label: str) -> None:
        self.job_label.setText(f"Running: {label}")

    @Slot(int, str, int, int, str)
    def _on_worker_progress(self, job_id: int, stage: str, step: int, total: int, message: str) -> None:
        if job_id in self.training_jobs:
            identity_id = self.training_jobs[job_id]
            self.training[identity_id] = step / total if total else 0.0
            self.job_label.setText(f"Training: {message or f'step {step}/{total}'}")
            self.identities.refresh(self.training)
            return
        self.panel.show_progress(stage, step, total, message)

    @Slot(int, object)
    def _on_worker_preview(self, job_id: int, image) -> None:
        self.canvas.set_image(image)

    def _end_training(self, job_id: int) -> bool:
        identity_id = self.training_jobs.pop(job_id, None)
        if identity_id is None:
            return False
        self.training.pop(identity_id, None)
        self.identities.refresh(self.training)
        self.job_label.setText("Idle")
        self.probe_device()  # GPU memory after the job
        return True

    @Slot(int, object)
    def _on_worker_finished(self, job_id: int, payload) -> None:
        self.project_jobs.pop(job_id, None)
        if self._end_training(job_id):
            self.statusBar().showMessage("Training finished: the identity's LoRA is saved in the project.", 8000)
            return
        if not isinstance(payload, tuple) or len(payload) != 2:
            return
        result, output_id = payload
        self.stage_images.update(result.stages)
        if result.final is not None:
            self.stage_images["final"] = result.final.rgb8()
        self.last_output_id = output_id
        done = "final" if result.final is not None else ("pasted" if "pasted" in result.stages else "B")
        self.show_stage(done)
        self._show_stage()
        if output_id:
            self.history.refresh()  # first: the status line claims only what the History already shows
        score = "" if result.identity_score is None else f", identity score {result.identity_score:.3f}"
        self.panel.show_done(f"Done in {sum(result.timings.values()):.1f} s{score}." +
                             (f" Saved to History as #{output_id}." if output_id else ""))
        self.job_label.setText("Idle")
        if result.request.engine == "diffusion":
            self.probe_device()

    @Slot(int, str, str)
    def _on_worker_failed(self, job_id: int, message: str, details: str) -> None:
        self.project_jobs.pop(job_id, None)
        training = self._end_training(job_id)
        if not training:
            self.panel.show_stopped("Failed: " + message)
        self.job_label.setText("Idle")
        action = None
        if action_for(message) == "models":
            action = ("Open the model manager", self.show_model_settings)
        title = "Training failed" if training else "The run failed"
        self.last_error = show_error(self, title, message, details, action)

    @Slot(int)
    def _on_worker_cancelled(self, job_id: int) -> None:
        self._drop_queued_job(job_id)
        if self._end_training(job_id):
            self.statusBar().showMessage("Training cancelled; it resumes from its last checkpoint next time.", 8000)
            return
        self.panel.show_stopped("Cancelled; nothing was recorded.")
        self.job_label.setText("Idle")

    def _drop_queued_job(self, job_id: int) -> None:
        """A job cancelled before it started: its row says so (a started one marks itself)."""
        project_job = self.project_jobs.pop(job_id, None)
        if project_job is None or self.project is None:
            return
        if self.project.job(project_job).state == "queued":
            self.project.update_job(project_job, state="cancelled")

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

    # ------------------------------------------------------------------ imports

    def import_identity_photos(self, identity_id: int, files: list[str]) -> None:
        from ..project import import_identity_photos

        project = self.project
        self.job_label.setText(f"Importing {len(files)} photo(s)…")
        worker = run_in_background(import_identity_photos, project, identity_id, files,
                                   on_done=self._on_import_done, on_error=self._on_background_error)
        self._track(worker)

    def import_references(self, files: list[str]) -> None:
        from ..project import import_references

        self.job_label.setText(f"Importing {len(files)} reference(s)…")
        worker = run_in_background(import_references, self.project, files, on_done=self._on_import_done,
                                   on_error=self._on_background_error)
        self._track(worker)

    def _on_import_done(self, results) -> None:
        imported = sum(r.status == "imported" for r in results)
        problems = [r.reason for r in results if r.status != "imported" and r.reason]
        self.job_label.setText("Idle")
        self.statusBar().showMessage(f"Imported {imported} of {len(results)}.", 6000)
        self.identities.refresh()
        self.references.refresh()
        if problems:
            show_error(self, "Import", f"{len(problems)} file(s) were not imported:\n" + "\n".join(problems[:12]))

    def _on_background_error(self, exc: Exception) -> None:
        self.job_label.setText("Idle")
        import traceback

        details = "".join(traceback.format_exception(exc)) if not isinstance(exc, MegaPortraitError) else ""
        show_error(self, "Error", str(exc), details)

    # ------------------------------------------------------------------ history

    def _on_history_output_selected(self, output_id: int) -> None:
        out = self.project.output(output_id)
        image = load_image(self.project.path_of(out.final_path)).rgb8()
        self.stage_images["final"] = image
        for name, path in out.stages.items():
            if name not in {"final"}:
                self.stage_images[name] = load_image(self.project.path_of(path)).pixels[..., 0] \
                    if name == "mask" else load_image(self.project.path_of(path)).rgb8()
        self.show_stage("final")
        self._show_stage()

    def recall_settings(self, output_id: int) -> None:
        out = self.project.output(output_id)
        try:
            request = RunRequest.from_dict(self.project.resolve_request(out.request))
        except MegaPortraitError as exc:
            show_error(self, "Recall settings", str(exc))
            return
        self.panel.set_from_request(request)
        if out.identity_id:
            self.identities.select(out.identity_id)
        if out.reference_id:
            self.references.select(out.reference_id)
        self.statusBar().showMessage(f"Settings of output #{output_id} recalled.", 5000)

    def _on_history_compare_requested(self, output_id: int) -> None:
        self._on_history_output_selected(output_id)
        self.compare.setChecked(True)

    def export_output(self, output_id: int | None = None) -> None:
        output_id = output_id or self.history.current_id() or self.last_output_id
        if not output_id or self.project is None:
            show_error(self, "Export", "Choose an output in History first.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export output", f"portrait_{output_id}.jpg",
                                              "JPEG (*.jpg);;PNG (*.png);;16-bit TIFF (*.tif)")
        if path:
            from ..project.exchange import export_output

            try:
                export_output(self.project, output_id, path)
                self.statusBar().showMessage(f"Exported {path}", 5000)
            except MegaPortraitError as exc:
                show_error(self, "Export", str(exc))

    def _on_history_delete_requested(self, output_id: int) -> None:
        answer = QMessageBox.question(self, "Delete output", f"Delete output #{output_id} and its images?")
        if answer == QMessageBox.StandardButton.Yes:
            self.project.delete_output(output_id)
            self.history.refresh()

    # ------------------------------------------------------------------ training, models, about

    def _on_identities_train_requested(self, identity_id: int) -> None:
        if self.project is None or not self.project.identity_photos(identity_id):
            show_error(self, "Train identity", "Add photos of the client to this identity first.")
            return
        self._submit_training(identity_id)

    def _submit_training(self, identity_id: int, project_job: int | None = None) -> int:
        if project_job is None:
            project_job = queue_training(self.project, identity_id)
        else:
            self.project.resume_job(project_job)
        self.training[identity_id] = 0.0
        name = self.project.identity(identity_id).name
        job_id = self.worker.submit(Job(label=f"Training {name}", kind="train",
                                        run=training_job(self.project, project_job, identity_id)))
        self.training_jobs[job_id] = identity_id
        self.project_jobs[job_id] = project_job
        self.identities.refresh(self.training)
        return job_id

    def offer_models(self) -> None:
        """On a start without diffusion models: offer a pack found beside the installer, else say
        where models come from. The classic engine works either way, so nothing here blocks."""
        import os

        def check():
            from ..core.modelstore.manager import role_state
            from ..core.modelstore.packs import find_pack_beside

            if role_state("base").state == "installed":
                return None
            return str(find_pack_beside(os.environ.get("MEGAPORTRAIT_PACK_DIR")) or "")

        self._track(run_in_background(check, on_done=self._on_models_checked, on_error=lambda exc: None))

    def _on_models_checked(self, pack: str | None) -> None:
        if pack is None:
            return  # the base model is installed
        if not pack:
            self.statusBar().showMessage("No diffusion models installed yet: the classic engine works now; "
                                         "Models → Model Manager installs them.", 15_000)
            return
        answer = QMessageBox.question(self, "Install models",
                                      f"A model pack was found beside MegaPortrait:\n{pack}\n\nInstall it now? "
                                      "Every file's hash is checked; nothing is changed if the pack is damaged.")
        if answer == QMessageBox.StandardButton.Yes:
            self.show_model_settings()
            self.model_dialog.install_pack(pack)

    def show_model_settings(self) -> None:
        from .model_manager import ModelManagerDialog

        self.model_dialog = ModelManagerDialog(self)
        self.model_dialog.states_changed.connect(lambda _: self.probe_device())
        self.model_dialog.show()

    def show_about(self) -> None:
        QMessageBox.about(self, "About MegaPortrait Desktop",
                          f"<b>MegaPortrait Desktop {__version__}</b><p>Puts a client's face into a reference "
                          "portrait, offline: identity kept, shading kept, no seam.</p>")

    # ------------------------------------------------------------------ layout

    def _restore_layout(self) -> None:
        s = settings()
        geometry, state = s.value("geometry"), s.value("windowState")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)

    def save_layout(self) -> None:
        s = settings()
        s.setValue("geometry", self.saveGeometry())
        s.setValue("windowState", self.saveState())
        s.sync()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if self.worker.busy:
            answer = QMessageBox.question(self, "Quit", "A job is running. Cancel it and quit?")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        if self.mask_editor.dirty:
            self.save_mask()  # nothing the user painted is lost
        self.save_layout()
        self.worker.shutdown()
        for job_id in list(self.project_jobs):  # queued ones the user chose to cancel by quitting
            self._drop_queued_job(job_id)
        # Imports, thumbnails and previews still running report to this window: let them finish first.
        QThreadPool.globalInstance().waitForDone(10_000)
        if self.project is not None:
            self.project.close()
        event.accept()


def _device_summary() -> str:
    """Until the probe has run (after the window shows), the status bar names no device."""
    return "Device: checking…"


def probe_device() -> str:
    """Device and GPU memory for the status bar. Imports torch, so it runs on a worker thread."""
    try:
        import torch
    except ImportError:
        return "Device: CPU (no PyTorch: classic engine only)"
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return (f"Device: {torch.cuda.get_device_name(0)} · GPU memory {(total - free) / 2**30:.1f} of "
                f"{total / 2**30:.0f} GiB in use")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Device: Apple GPU (MPS)"
    return "Device: CPU (no GPU found: the diffusion engine will be slow)"


