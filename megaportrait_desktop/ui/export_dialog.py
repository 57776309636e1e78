"""The Export dialog: a preset (client delivery, web, social, print lab, master, archive), or one's own
settings, for one output or many at once; the files are written on a worker thread.

Whether MegaPortrait's provenance (the client's name, the prompt, the project's paths) goes into the
files is a visible checkbox, off for every delivery preset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import Cancelled
from ..core.progress import CancelToken
from ..project import Project, ProjectError
from ..project.export_presets import (
    BUILT_IN,
    FORMATS,
    NAME_TOKENS,
    SHARPEN_MEDIA,
    SHARPEN_STRENGTHS,
    ExportPreset,
    export_with_preset,
    file_name,
    name_values,
    presets_from_json,
    presets_to_json,
    with_name,
)
from .workers import run_in_background

FORMAT_LABELS = {"jpeg": "JPEG (8-bit)", "png": "PNG (8-bit, lossless)", "tiff": "TIFF (16-bit)"}
SHARPEN_LABELS = {"none": "None", "screen": "For screen", "matte": "For matte paper", "glossy": "For glossy paper"}


class _Progress(QObject):
    """Carries the worker's progress to the GUI thread (a signal emitted on another thread is queued)."""

    reported = Signal(float, int, str)


class ExportDialog(QDialog):
    """Exports ``output_ids`` of ``project`` with the chosen preset; ``exported`` gives the files written."""

    exported = Signal(list)

    def __init__(self, project: Project, output_ids: list[int], settings: QSettings,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export" if len(output_ids) == 1 else f"Export {len(output_ids)} outputs")
        self.setObjectName("exportDialog")
        self.project, self.output_ids, self._settings = project, list(output_ids), settings
        self.user_presets = presets_from_json(settings.value("exportPresets", "", type=str))
        self.preset = QComboBox()
        self.preset.setObjectName("exportPreset")
        self.format = QComboBox()
        for key in FORMATS:
            self.format.addItem(FORMAT_LABELS[key], key)
        self.quality = QSpinBox()
        self.quality.setRange(1, 100)
        self.quality.setToolTip("JPEG quality: 100 = largest file, 85 looks the same on screen at a third of it")
        self.long_edge = QSpinBox()
        self.long_edge.setRange(0, 100_000)
        self.long_edge.setSuffix(" px")
        self.long_edge.setSpecialValueText("Full size")
        self.long_edge.setToolTip("Resize so the longer side is this many pixels (never enlarged); 0 = full size")
        self.sharpen = QComboBox()
        for key in SHARPEN_MEDIA:
            self.sharpen.addItem(SHARPEN_LABELS[key], key)
        self.sharpen_strength = QComboBox()
        for key in SHARPEN_STRENGTHS:
            self.sharpen_strength.addItem(key.capitalize(), key)
        self.srgb = QCheckBox("Convert to sRGB (and embed the sRGB profile)")
        self.srgb.setToolTip("What browsers, phones and most print labs expect; off keeps the reference's own profile")
        self.pattern = QLineEdit()
        self.pattern.setObjectName("exportPattern")
        self.pattern.setToolTip("Tokens: " + ", ".join("{" + t + "}" for t in NAME_TOKENS))
        self.example = QLabel()
        self.example.setWordWrap(True)
        self.provenance = QCheckBox("Include MegaPortrait provenance (client name, prompt, settings)")
        self.provenance.setObjectName("exportProvenance")
        self.provenance.setToolTip("Off for files that leave the studio: the project keeps the provenance anyway")
        self.keep_exif = QCheckBox("Keep the camera's EXIF (never the GPS location)")
        self.folder = QLineEdit(str(settings.value("exportFolder", str(Path.home() / "Pictures" / "MegaPortrait"))))
        self.folder.setObjectName("exportFolder")
        browse = QPushButton("Choose…")
        browse.clicked.connect(self._on_browse_clicked)
        save = QPushButton("Save as preset…")
        save.clicked.connect(self._on_save_preset_clicked)
        where = QHBoxLayout()
        where.addWidget(self.folder, 1)
        where.addWidget(browse)
        sharpen = QHBoxLayout()
        sharpen.addWidget(self.sharpen, 1)
        sharpen.addWidget(self.sharpen_strength)
        form = QFormLayout()
        form.addRow("Preset", self.preset)
        form.addRow("Format", self.format)
        form.addRow("JPEG quality", self.quality)
        form.addRow("Long edge", self.long_edge)
        form.addRow("Output sharpening", sharpen)
        form.addRow("", self.srgb)
        form.addRow("File names", self.pattern)
        form.addRow("", self.example)
        form.addRow("Metadata", self.provenance)
        form.addRow("", self.keep_exif)
        form.addRow("Folder", where)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100 * max(1, len(output_ids)))
        self.progress.hide()
        self.status = QLabel(f"{len(output_ids)} output(s): " + ", ".join(f"#{i}" for i in output_ids[:12])
                             + ("…" if len(output_ids) > 12 else ""))
        self.status.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        self.buttons.addButton(save, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.accepted.connect(self.start)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.status)
        layout.addWidget(self.progress)
        layout.addWidget(self.buttons)
        self.resize(640, 0)
        self._fill_presets(str(settings.value("exportPresetName", BUILT_IN[0].name)))
        self.preset.currentIndexChanged.connect(lambda _: self.show_preset(self.preset.currentData()))
        for signal in (self.format.currentIndexChanged, self.pattern.textChanged, self.srgb.toggled):
            signal.connect(self._update)
        self.show_preset(self.preset.currentData())
        self._worker = None
        self._cancel = CancelToken()
        self.written: list[Path] = []

    # ------------------------------------------------------------------ presets

    def presets(self) -> tuple[ExportPreset, ...]:
        return (*BUILT_IN, *self.user_presets)

    def _fill_presets(self, chosen: str) -> None:
        self.preset.blockSignals(True)
        self.preset.clear()
        for preset in self.presets():
            self.preset.addItem(preset.name, preset)
        index = self.preset.findText(chosen)
        self.preset.setCurrentIndex(max(0, index))
        self.preset.blockSignals(False)

    def show_preset(self, preset: ExportPreset) -> None:
        """Fill every field from ``preset`` (they stay editable: a preset is a starting point)."""
        self.format.setCurrentIndex(self.format.findData(preset.format))
        self.quality.setValue(preset.quality)
        self.long_edge.setValue(preset.long_edge)
        self.sharpen.setCurrentIndex(self.sharpen.findData(preset.sharpen))
        self.sharpen_strength.setCurrentIndex(self.sharpen_strength.findData(preset.sharpen_strength))
        self.srgb.setChecked(preset.srgb)
        self.pattern.setText(preset.pattern)
        self.provenance.setChecked(preset.include_provenance)
        self.keep_exif.setChecked(preset.keep_exif)
        self._update()

    def current(self) -> ExportPreset:
        """The settings as shown (the preset's name, whatever was changed since)."""
        return ExportPreset(self.preset.currentText(), format=self.format.currentData(), quality=self.quality.value(),
                            long_edge=self.long_edge.value(), sharpen=self.sharpen.currentData(),
                            sharpen_strength=self.sharpen_strength.currentData(), srgb=self.srgb.isChecked(),
                            pattern=self.pattern.text(), include_provenance=self.provenance.isChecked(),
                            keep_exif=self.keep_exif.isChecked())

    def _update(self) -> None:
        tiff = self.format.currentData() == "tiff"
        self.quality.setEnabled(self.format.currentData() == "jpeg")
        if tiff and self.srgb.isChecked():
            self.srgb.setChecked(False)  # a 16-bit master keeps its own profile
        self.srgb.setEnabled(not tiff)
        ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        try:
            self.current().check()
            name = file_name(self.pattern.text(), name_values(self.project, self.output_ids[0], 1))
            suffix = FORMATS[self.format.currentData()]
            self.example.setText(f"e.g. {name}{suffix}")
            ok.setEnabled(True)
        except ProjectError as exc:
            self.example.setText(f"⚠ {exc}")
            ok.setEnabled(False)

    def _on_save_preset_clicked(self) -> None:
        name, accepted = QInputDialog.getText(self, "Save export preset", "Preset name:",
                                              text=f"{self.preset.currentText()} (mine)")
        if not accepted or not name.strip():
            return
        preset = with_name(self.current(), name)
        builtin = {p.name for p in BUILT_IN}
        if preset.name in builtin:
            preset = with_name(preset, f"{preset.name} (mine)")
        self.user_presets = (*(p for p in self.user_presets if p.name != preset.name), preset)
        self._settings.setValue("exportPresets", presets_to_json(self.user_presets))
        self._fill_presets(preset.name)
        self.show_preset(preset)

    def _on_browse_clicked(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into which folder?", self.folder.text())
        if folder:
            self.folder.setText(folder)

    # ------------------------------------------------------------------ export

    def start(self) -> None:
        """Write the files on a worker thread; the dialog shows how far it is and closes when done."""
        preset = self.current()
        folder = Path(self.folder.text().strip()).expanduser()
        self._settings.setValue("exportFolder", str(folder))
        self._settings.setValue("exportPresetName", self.preset.currentText())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(False)
        self.progress.setValue(0)
        self.progress.show()
        self.status.setText(f"Exporting {len(self.output_ids)} output(s) to {folder}…")
        progress = _Progress(self)
        progress.reported.connect(self._on_progress)
        self._cancel = CancelToken()

        def report(done: float, total: int, what: str) -> None:
            self._cancel.check()  # Cancel stops the export between two bands of rows
            progress.reported.emit(done, total, what)
        self._worker = run_in_background(export_with_preset, self.project, self.output_ids, folder,
                                         replace(preset), on_progress=report,
                                         on_done=self._on_done, on_error=self._on_error)

    def _on_progress(self, done: float, total: int, what: str) -> None:
        self.progress.setValue(round(done * 100))
        if not self._cancel.cancelled:
            self.status.setText(f"{min(int(done) + 1, total)} of {total}: {what}…")

    def reject(self) -> None:
        """Cancel while files are written: the export stops (files already written stay) and the dialog
        closes once it has; otherwise close."""
        if self._worker is not None and not self._cancel.cancelled:
            self._cancel.cancel()
            self.status.setText("Cancelling…")
            self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(False)
            return
        if self._worker is None:
            super().reject()

    def _on_done(self, written: list[Path]) -> None:
        self._worker = None
        self.written = written
        self.exported.emit(written)
        self.accept()

    def _on_error(self, exc: Exception) -> None:
        self._worker = None
        if isinstance(exc, Cancelled):
            super().reject()
            return
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setEnabled(True)
        self.progress.hide()
        self.status.setText(f"⚠ {exc}")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(True)
