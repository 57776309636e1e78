"""The model manager dialog: each role's state, installing packs, choosing a checkpoint, downloads, licences.

Every action calls ``core.modelstore`` on a worker thread (hashing and copying gigabytes must not
freeze the window); the worker only returns results or emits signals, and the dialog redraws the table
from a fresh :func:`model_states` when it is done.
"""

from __future__ import annotations

from dataclasses import replace
from html import escape
from pathlib import Path

import qtawesome as qta
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.model_settings import ROLES, SWITCHES
from ..core.modelstore.guide import download_total, role_guide, size_text

STATE_ICONS = {"installed": ("mdi6.check-circle", "#5cb85c"), "missing": ("mdi6.minus-circle", "#999999"),
               "damaged": ("mdi6.alert-circle", "#d9534f")}
COLUMNS = ["Role", "State", "Size", "Source", "Licence"]
INTRO = ("The classic engine needs no models: it works now. The diffusion engine needs the first five models (about "
         "{total} in all from the Hugging Face Hub), or a studio's model pack (Install pack…); the others are "
         "optional. Select a row to see what it is, where to get it and how to install it.")


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB" if n else ""


class ModelManagerDialog(QDialog):
    """Lists :data:`MANAGED_ROLES` with their state; ``states_changed`` fires after each refresh."""

    states_changed = Signal(object)  # list[RoleState]
    download_progress = Signal(object)  # DownloadProgress, emitted from the download thread

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelManager")
        self.resize(1000, 620)
        self.states: list = []
        self._workers: list = []
        self._cancel = None
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.intro = QLabel(INTRO.format(total=size_text(download_total(list(ROLES)))))
        self.intro.setWordWrap(True)
        self.guide = QLabel()
        self.guide.setObjectName("modelGuide")
        self.guide.setWordWrap(True)
        self.guide.setOpenExternalLinks(True)
        self.guide.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.guide.setMinimumHeight(110)
        self.guide.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.guide.setStyleSheet("QLabel#modelGuide { border: 1px solid #555; padding: 6px; }")
        self.status = QLabel("Reading the models…")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.offline = QCheckBox("Offline mode (never use the network)")
        self.fast_path = QCheckBox("Fast GPU path")
        self.fast_path.setToolTip("On NVIDIA GPUs: compiled models and recorded steps, about a second per portrait "
                                  "instead of seven to ten. The first run after each start prepares it (minutes the "
                                  "very first time). Off: the stock diffusers calls.")
        self.low_memory = QComboBox()
        self.low_memory.addItems([s.capitalize() for s in SWITCHES])
        self.low_memory.setToolTip("Low-memory mode keeps the whole pipeline under 8 GiB of GPU memory (ControlNets "
                                   "wait in system memory), 3-12 % slower on an H100. Auto: on GPUs of 12 GB or less.")
        self.install_button = self._button("Install pack…", "mdi6.package-down", self._on_install_clicked)
        self.choose_button = self._button("Choose checkpoint…", "mdi6.file-cog", self._on_choose_clicked)
        self.download_button = self._button("Download", "mdi6.download", self._on_download_clicked)
        self.cancel_button = self._button("Cancel download", "mdi6.close-circle", self._on_cancel_clicked)
        self.cancel_button.setEnabled(False)
        self.licence_button = self._button("Licence…", "mdi6.script-text", self._on_licence_clicked)
        actions = QHBoxLayout()
        for button in (self.install_button, self.choose_button, self.download_button, self.cancel_button,
                       self.licence_button):
            actions.addWidget(button)
        actions.addStretch(1)
        actions.addWidget(self.offline)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        speed = QHBoxLayout()
        speed.addWidget(self.fast_path)
        speed.addSpacing(16)
        speed.addWidget(QLabel("Low-memory mode:"))
        speed.addWidget(self.low_memory)
        speed.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.guide)
        layout.addLayout(actions)
        layout.addLayout(speed)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.offline.toggled.connect(self._on_offline_toggled)
        self.fast_path.toggled.connect(self._on_fast_path_toggled)
        self.low_memory.currentIndexChanged.connect(self._on_low_memory_changed)
        self.download_progress.connect(self._on_download_progress)
        self.table.itemSelectionChanged.connect(self._on_table_selection_changed)
        self.refresh()

    def _button(self, text: str, icon: str, slot) -> QPushButton:
        button = QPushButton(qta.icon(icon), text)
        button.clicked.connect(slot)
        return button

    # ------------------------------------------------------------------ public

    def refresh(self) -> None:
        """Re-read every role's state on a worker thread."""
        from ..core.model_settings import load_settings
        from ..core.modelstore.manager import model_states

        def read():
            settings = load_settings()
            return settings, model_states(settings)

        self._start(read, self._on_states_loaded)

    def install_pack(self, path: str | Path) -> None:
        """Install a pack folder or zip, then refresh (what the Install pack… button does after its file dialog)."""
        from ..core.modelstore.packs import install_pack
        from ..core.progress import Reporter

        self._busy(f"Installing {Path(path).name}…")
        self._start(lambda: install_pack(path, reporter=Reporter()), self._on_installed)

    def selected_role(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        return self.states[rows[0].row()].role if rows and self.states else None

    # ------------------------------------------------------------------ slots

    def _on_states_loaded(self, result) -> None:
        settings, states = result
        self.states = states
        with _blocked(self.offline):
            self.offline.setChecked(settings.offline)
        with _blocked(self.fast_path):
            self.fast_path.setChecked(settings.fast_path != "off")
        with _blocked(self.low_memory):
            self.low_memory.setCurrentIndex(SWITCHES.index(settings.low_memory)
                                            if settings.low_memory in SWITCHES else 0)
        self.table.setRowCount(len(states))
        for row, s in enumerate(states):
            icon, color = STATE_ICONS[s.state]
            cells = [QTableWidgetItem(s.title), QTableWidgetItem(qta.icon(icon, color=color), s.state),
                     QTableWidgetItem(_size(s.size)), QTableWidgetItem(s.source or "(not set)"),
                     QTableWidgetItem(s.licence.name + ("" if s.licence_accepted else " — not accepted yet"))]
            tip = "\n".join(x for x in (str(s.path or ""), f"sha256 {s.sha256}" if s.sha256 else "",
                                        "in the Hugging Face cache" if s.in_hf_cache else "", s.message) if x)
            for col, cell in enumerate(cells):
                cell.setToolTip(tip)
                cell.setData(Qt.ItemDataRole.UserRole, s.role)
                self.table.setItem(row, col, cell)
        self.table.resizeColumnsToContents()
        if not self.table.selectionModel().selectedRows() and states:
            missing = next((row for row, s in enumerate(states) if s.state != "installed"), 0)
            self.table.selectRow(missing)
        if self.status.text() == "Reading the models…":  # later texts say what the last action did
            self.status.setText(f"{sum(s.state == 'installed' for s in states)} of {len(states)} installed.")
        self._on_table_selection_changed()
        self.states_changed.emit(states)

    def _on_installed(self, report) -> None:
        self._idle(f"Installed {len(report.models)} models: {report.copied} files copied, {report.skipped} "
                   "already there.")
        self.refresh()

    def _on_install_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Install model pack (a zip; Cancel to pick a folder)",
                                              filter="Model packs (*.zip manifest.json)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Install model pack folder")
        if path:
            self.install_pack(Path(path).parent if Path(path).name == "manifest.json" else path)

    def _on_choose_clicked(self) -> None:
        from ..core.modelstore.manager import set_model

        role = self.selected_role() or "base"
        path, _ = QFileDialog.getOpenFileName(self, f"Choose the {role} checkpoint (Cancel to pick a folder)",
                                              filter="Safetensors (*.safetensors)")
        path = path or QFileDialog.getExistingDirectory(self, f"Choose the {role} diffusers folder")
        if path:
            self._busy(f"Checking {Path(path).name}…")
            self._start(lambda: set_model(role, path), lambda _: (self._idle(f"{role} set."), self.refresh()))

    def _on_download_clicked(self) -> None:
        from ..core.modelstore.downloads import download_role
        from ..core.progress import CancelToken

        role = self.selected_role()
        if role is None or not self._confirm_download(role):
            return
        self._cancel = CancelToken()
        self.cancel_button.setEnabled(True)
        self._busy(f"Downloading the {role} model…")
        self.progress.setRange(0, 1000)
        # The callback runs on the download thread: it only emits a signal (queued to the GUI thread).
        self._start(lambda: download_role(role, on_progress=self.download_progress.emit, cancel=self._cancel),
                    lambda _: (self._idle(f"{role} downloaded."), self.refresh()))

    def _on_download_progress(self, p) -> None:
        self.progress.setValue(int(p.fraction * 1000))
        eta = f", {p.eta:.0f} s left" if p.eta is not None else ""
        self.status.setText(f"{p.file}: {_size(p.done)} of {_size(p.total)} at {_size(int(p.speed))}/s{eta}")

    def _on_cancel_clicked(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()

    def _on_licence_clicked(self) -> None:
        from ..core.licences import accept

        state = next((s for s in self.states if s.role == self.selected_role()), None)
        if state is None:
            return
        text = f"<b>{state.licence.name}</b><p>{state.licence.summary}</p><p>{state.licence.url}</p>"
        if not state.licence.requires_acceptance:
            QMessageBox.information(self, "Licence", text)
            return
        answer = QMessageBox.question(self, "Accept licence", text + "<p>Do you accept these terms?</p>")
        if answer == QMessageBox.StandardButton.Yes:
            accept(state.role, state.licence)
            self.refresh()

    def _on_offline_toggled(self, checked: bool) -> None:
        from ..core.model_settings import load_settings, save_settings

        save_settings(replace(load_settings(), offline=checked))
        self.download_button.setEnabled(not checked)

    def _on_fast_path_toggled(self, checked: bool) -> None:
        from ..core.model_settings import load_settings, save_settings

        # The GPU worker reads the settings at its next job and reloads the models for the other path.
        save_settings(replace(load_settings(), fast_path="auto" if checked else "off"))

    def _on_low_memory_changed(self, index: int) -> None:
        from ..core.model_settings import load_settings, save_settings

        save_settings(replace(load_settings(), low_memory=SWITCHES[index]))

    def _on_table_selection_changed(self) -> None:
        role = self.selected_role()
        self._show_guide(role)
        self.download_button.setEnabled(role in ROLES and not self.offline.isChecked() and not self._cancel)
        self.choose_button.setEnabled(role is None or role in ROLES)
        self.licence_button.setEnabled(role is not None)

    def _show_guide(self, role: str | None) -> None:
        """What the selected role is, whether a run needs it, what to install, from where and how big:
        in the dialog itself (a tooltip running off the screen is no guide)."""
        state = next((s for s in self.states if s.role == role), None)
        if state is None:
            self.guide.setText("Select a row to see what it is and how to install it.")
            return
        g = role_guide(state.role, state.path)
        size = f" · about {size_text(g.download_size)}" if g.download_size else ""
        lines = [f"<b>{escape(state.title)}</b> — {escape(state.state)}. {escape(g.purpose)} {escape(g.needed)}",
                 f"<b>What to install:</b> {escape(g.what)}{size}",
                 f'<b>Where from:</b> <a href="{g.source_url}">{escape(g.source_url)}</a>',
                 f"<b>How:</b> {escape(g.how)}"]
        if state.state != "installed" and state.source:
            lines.append(f"<b>Chosen now:</b> {escape(state.source)}")
        if state.message and state.state == "damaged":
            lines.append(f"<b>Now:</b> {escape(state.message)}")
        self.guide.setText("<br>".join(lines))

    def _confirm_download(self, role: str) -> bool:
        """Say how big a download is, and where it goes, before it starts."""
        from ..core.model_settings import ROLE_NAMES
        from ..core.modelstore.downloads import default_repo

        g = role_guide(role)
        answer = QMessageBox.question(
            self, "Download model",
            f"Download {default_repo(role)} for the {ROLE_NAMES.get(role, role)}, about "
            f"{size_text(g.download_size)}, into the Hugging Face cache? Free disk space is checked first; Cancel "
            "download keeps the part already fetched and the next Download resumes it.")
        return answer == QMessageBox.StandardButton.Yes

    # ------------------------------------------------------------------ helpers

    def _start(self, fn, on_done) -> None:
        from superqt.utils import create_worker

        # Connected before the thread starts: a quick job could otherwise finish before ``finished`` is wired.
        worker = create_worker(fn, _connect={"returned": on_done, "errored": self._on_error}, _start_thread=False)
        self._workers.append(worker)
        worker.finished.connect(lambda: self._workers.remove(worker) if worker in self._workers else None)
        worker.start()

    def _on_error(self, exc: Exception) -> None:
        self._idle(f"{type(exc).__name__}: {exc}" if not str(exc) else str(exc))
        self.refresh()

    def _busy(self, text: str) -> None:
        self.status.setText(text)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.install_button.setEnabled(False)

    def _idle(self, text: str) -> None:
        self._cancel = None
        self.cancel_button.setEnabled(False)
        self.progress.setVisible(False)
        self.install_button.setEnabled(True)
        self.status.setText(text)


class _blocked:  # noqa: N801 - reads as a context manager, like QSignalBlocker
    def __init__(self, widget: QWidget) -> None:
        from PySide6.QtCore import QSignalBlocker

        self._blocker = QSignalBlocker(widget)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc) -> None:
        self._blocker.unblock()
