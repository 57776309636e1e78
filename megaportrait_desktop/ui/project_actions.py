"""What comes into a project from the window: new and opened projects, the recent list, photos and
references to import, and the jobs a previous session left unfinished."""

from __future__ import annotations

import traceback

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from ..core.errors import MegaPortraitError
from ..project import Project, ProjectError, import_identity_photos, import_references
from .empty_hints import update_canvas_hint
from .errors import show_error, show_over
from .interrupted_jobs import InterruptedJobsDialog
from .jobs import request_of
from .recent import recent_projects
from .workers import run_in_background


class ProjectActions(QObject):
    """Wires the File menu, the import buttons and interrupted jobs to the window (a ``MainWindow``)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        window.identities.import_requested.connect(self.import_identity_photos)
        window.references.import_requested.connect(self.import_references)
        # Photos removed or an identity renamed: the request (and History's identity filter) change.
        window.identities.identities_changed.connect(lambda _: (window.session.request_changed.emit(),
                                                            window.history.refresh()))
        window.session.selection_changed.connect(self._on_session_selection_changed)

    def _on_session_selection_changed(self) -> None:
        w = self.window
        w.identities.photos.reference_id = w.session.reference_id  # Check set compares with this reference
        update_canvas_hint(w)

    # ------------------------------------------------------------------ projects

    def new_project(self) -> None:
        """Ask for a name and a location (:class:`.new_project_dialog.NewProjectDialog`), then create and open it."""
        from .new_project_dialog import NewProjectDialog
        from .recent import settings

        w = self.window
        w.new_project_dialog = dialog = NewProjectDialog(settings(), w)
        dialog.setModal(True)
        dialog.accepted.connect(lambda: self.create_project(dialog.target(), dialog.project_name()))
        show_over(w, dialog)

    def create_project(self, folder, name: str | None = None) -> bool:
        """Create the project folder ``folder`` (called ``name``) and open it."""
        w = self.window
        try:
            Project.create(folder, name=name, program="MegaPortrait Desktop").close()
        except ProjectError as exc:
            show_error(w, "New project", str(exc))
            return False
        return w.open_project(folder)

    def open_project_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open a MegaPortrait project folder")
        if folder:
            self.window.open_project(folder)

    def update_recent_menu(self) -> None:
        menu = self.window.recent_menu
        menu.clear()
        for root in recent_projects():
            menu.addAction(root, lambda r=root: self.window.open_project(r))
        menu.setEnabled(bool(menu.actions()))

    # ------------------------------------------------------------------ interrupted jobs

    def show_interrupted_jobs(self) -> None:
        """List the jobs a previous session left queued or running, with Run again / Discard."""
        w = self.window
        w.interrupted_dialog = InterruptedJobsDialog(w.project, w.project.interrupted_jobs(), w)
        w.interrupted_dialog.run_again_requested.connect(self._on_interrupted_run_again)
        w.interrupted_dialog.discard_requested.connect(self._on_interrupted_discard)
        show_over(w, w.interrupted_dialog)

    def _on_interrupted_run_again(self, rows: list[int]) -> None:
        w = self.window
        for row in rows:
            job = w.project.job(row)
            try:
                if job.kind == "train":
                    w.jobs.submit_training(job.identity_id, row)
                else:
                    p = job.payload
                    w.jobs.submit_run(request_of(w.project, p), p["identity_id"], p["reference_id"], p.get("until"),
                                      row)
                    w.panel.set_running(True, "Run again queued")
            except MegaPortraitError as exc:
                w.project.update_job(row, state="failed", error=str(exc))
                show_error(w, "Run again", f"Job #{row} cannot run again: {exc}")

    def _on_interrupted_discard(self, rows: list[int]) -> None:
        for row in rows:
            self.window.project.discard_job(row)
        self.window.statusBar().showMessage(f"Discarded {len(rows)} interrupted job(s).", 5000)

    # ------------------------------------------------------------------ imports

    def import_identity_photos(self, identity_id: int, files: list[str]) -> None:
        w = self.window
        w.job_label.setText(f"Importing {len(files)} photo(s)…")
        w.track(run_in_background(import_identity_photos, w.project, identity_id, files,
                                  on_done=self._on_import_done, on_error=self._on_background_error))

    def import_references(self, files: list[str]) -> None:
        w = self.window
        w.job_label.setText(f"Importing {len(files)} reference(s)…")
        w.track(run_in_background(import_references, w.project, files, on_done=self._on_import_done,
                                  on_error=self._on_background_error))

    def _on_import_done(self, results) -> None:
        w = self.window
        imported = sum(r.status == "imported" for r in results)
        problems = [r.reason for r in results if r.status != "imported" and r.reason]
        w.job_label.setText("Idle")
        w.statusBar().showMessage(f"Imported {imported} of {len(results)}.", 6000)
        w.identities.refresh()
        w.references.refresh()
        w.history.refresh()  # a new identity appears in History's identity filter
        update_canvas_hint(w)
        w.session.request_changed.emit()  # a new photo changes the request
        if problems:
            show_error(w, "Import", f"{len(problems)} file(s) were not imported:\n" + "\n".join(problems[:12]))

    def _on_background_error(self, exc: Exception) -> None:
        self.window.job_label.setText("Idle")
        details = "" if isinstance(exc, MegaPortraitError) else "".join(traceback.format_exception(exc))
        show_error(self.window, "Error", str(exc), details)
