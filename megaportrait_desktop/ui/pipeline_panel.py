"""The pipeline panel: engine, the trade-off sliders, run buttons per stage, progress with ETA, cancel.

Every control is bound to a field of the :class:`.session.Session` (it writes there and shows what
is there, Recall included); the panel itself keeps no settings.
"""

from __future__ import annotations

import math
import time

import qtawesome as qta
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt import QElidingLabel

from .session import Session, bind
from .widgets import double_slider, scroll_area

#: Run buttons: the stage each one runs up to.
RUN_STAGES = (("identity", "1  Identity pair"), ("shading", "2  Shading"), ("harmonize", "3  Harmonize"))
#: Pipeline order with each step's share of a run (a classic run on a 24 MP reference, measured), for the
#: overall progress and the time left. Saving into History is a step too: the run is not done before it.
STAGE_SHARES = {"load": 0.22, "identity": 0.03, "shading": 0.02, "paste": 0.06, "harmonize": 0.25, "score": 0.14,
                "save": 0.28}
PROGRESS_STAGES = tuple(STAGE_SHARES)
#: Steps whose step counts mean nothing to the user (bands of rows, phases): shown without "(step k/n)".
_UNCOUNTED = {"harmonize", "score", "save"}


class PipelinePanel(QWidget):
    """Sliders and run controls; emits what the user asks for, runs nothing itself."""

    run_requested = Signal(str)         # "identity" | "shading" | "harmonize" | "all"
    cancel_requested = Signal()
    slider_released = Signal(str)       # the stage the released slider belongs to

    def __init__(self, session: Session, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.engine = QComboBox()
        self.engine.addItem("Classic (CPU, no models)", "classic")
        self.engine.addItem("Diffusion (GPU, needs models)", "diffusion")
        self.quality = QComboBox()
        self.quality.addItem("Final", "final")
        self.quality.addItem("Draft (speed LoRA, a few steps)", "draft")
        self.quality.setToolTip("Diffusion engine: Final runs every step; Draft runs a few steps with the speed "
                                "LoRA (LCM, Hyper-SD or TCD) for a quick look, recorded as a draft")

        self.a_strength = double_slider(0.0, 1.0, 0.0, "Identity weight of A, the reference-like image")
        self.b_strength = double_slider(0.0, 1.0, 1.0, "Identity weight of B, the client-like image")
        self.face_shape = double_slider(0.0, 1.0, 1.0, "Classic engine: the reference's jaw and cheeks moved onto the "
                                                       "client's (1 = the client's face shape, 0 = the reference's)")
        self.light_cutoff = double_slider(1.0, 60.0, 30.0, "Light map blur (crop pixels): larger = softer shading")
        self.hf_cutoff = double_slider(1.0, 60.0, 30.0, "Detail kept from B (crop pixels): larger = more of B")
        self.light_weight = double_slider(0.0, 1.0, 1.0, "Shading from the reference (1) or the client photo (0)")
        self.detail_weight = double_slider(0.0, 2.0, 1.0, "Gain on the client's detail")
        self.harmonize_strength = double_slider(0.0, 1.0, 1.0, "Seam blending")
        self.seam_width = double_slider(0.0, 40.0, 10.0, "Width of the blended band around the mask edge")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.steps = QSpinBox()
        self.steps.setRange(1, 150)
        self.steps.setValue(30)

        identity = QGroupBox("Identity (A ↔ B)")
        form = QFormLayout(identity)
        form.addRow("A identity", self.a_strength)
        form.addRow("B identity", self.b_strength)
        form.addRow("Face shape", self.face_shape)
        shading = QGroupBox("Shading")
        form = QFormLayout(shading)
        form.addRow("Light cut-off", self.light_cutoff)
        form.addRow("HF cut-off", self.hf_cutoff)
        form.addRow("Light weight", self.light_weight)
        form.addRow("Detail weight", self.detail_weight)
        harmony = QGroupBox("Harmonisation")
        form = QFormLayout(harmony)
        form.addRow("Strength", self.harmonize_strength)
        form.addRow("Seam width", self.seam_width)
        general = QFormLayout()
        general.addRow("Engine", self.engine)
        self.engine_note = QLabel()  # filled by .engine_check when the diffusion engine lacks its models
        general.addRow(self.engine_note)
        general.addRow("Quality", self.quality)
        general.addRow("Seed", self.seed)
        general.addRow("Steps", self.steps)

        self.stage_buttons: dict[str, QPushButton] = {}
        buttons = QGridLayout()
        for column, (stage, label) in enumerate(RUN_STAGES):
            button = QPushButton(label)
            button.clicked.connect(lambda _=False, s=stage: self.run_requested.emit(s))
            self.stage_buttons[stage] = button
            buttons.addWidget(button, 0, column)
        self.run_all = QPushButton(qta.icon("mdi6.play", color="white"), "Run all")
        self.run_all.setObjectName("primary")
        self.run_all.clicked.connect(lambda: self.run_requested.emit("all"))
        self.cancel = QPushButton(qta.icon("mdi6.stop"), "Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.cancel_requested)
        buttons.addWidget(self.run_all, 1, 0, 1, 2)
        buttons.addWidget(self.cancel, 1, 2)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        # Two lines at most, the second elided: a long message never widens the panel nor pushes Run all away.
        self.status = QElidingLabel("Ready")
        self.status.setWordWrap(True)
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setFixedHeight(2 * self.status.fontMetrics().lineSpacing() + 4)
        self.preview_mode = QLabel("")
        self.preview_mode.setObjectName("previewMode")
        self.preview_mode.setWordWrap(True)
        self.preview_mode.setStyleSheet("color: #8a8a8a;")
        self.final_on_release = QCheckBox("Final render when a slider is released")
        self.final_on_release.setChecked(True)
        self.final_on_release.setVisible(False)

        self.reset_all = QPushButton(qta.icon("mdi6.restore"), "Reset all")
        self.reset_all.setToolTip("Every setting back to its default (double-click one slider to reset only it)")
        self.reset_all.clicked.connect(lambda: session.reset())
        settings = QWidget()
        form_layout = QVBoxLayout(settings)
        form_layout.setContentsMargins(0, 0, 0, 0)
        form_layout.addLayout(general)
        form_layout.addWidget(identity)
        form_layout.addWidget(shading)
        form_layout.addWidget(harmony)
        form_layout.addWidget(self.preview_mode)
        form_layout.addWidget(self.final_on_release)
        form_layout.addWidget(self.reset_all)
        form_layout.addStretch(1)
        # The settings scroll on a small screen; the run controls below them stay in view (1280×720 included).
        self.settings_area = scroll_area(settings)
        layout = QVBoxLayout(self)
        layout.addWidget(self.settings_area, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        for path, widget in (("engine", self.engine), ("diffusion.quality", self.quality), ("seed", self.seed),
                             ("steps", self.steps),
                             ("identity_params.a_strength", self.a_strength),
                             ("identity_params.b_strength", self.b_strength),
                             ("identity_params.face_shape", self.face_shape),
                             ("shading.light_cutoff", self.light_cutoff), ("shading.hf_cutoff", self.hf_cutoff),
                             ("shading.light_weight", self.light_weight), ("shading.detail_weight", self.detail_weight),
                             ("harmonize.strength", self.harmonize_strength),
                             ("harmonize.seam_width", self.seam_width)):
            bind(session, path, widget)
        for stage, sliders in (("identity", (self.a_strength, self.b_strength)),
                               ("shading", (self.light_cutoff, self.hf_cutoff, self.light_weight,
                                            self.detail_weight))):
            for slider in sliders:
                slider.sliderReleased.connect(lambda s=stage: self.slider_released.emit(s))
        self._started = 0.0
        self._cancelling = self._running = False

    # ------------------------------------------------------------------ progress

    @property
    def running(self) -> bool:
        return self._running

    def set_running(self, running: bool, label: str = "") -> None:
        """Buttons and status for a run that starts (or ends); a run already under way keeps its start
        time (a mask saved first, then the run queued: the user waits for both)."""
        if running and not self._running:
            self._started = time.monotonic()
            self._cancelling = False
            self.progress.setValue(0)
        self._running = running
        for button in (*self.stage_buttons.values(), self.run_all):
            button.setEnabled(not running)
        self.cancel.setEnabled(running)
        if running:
            self.status.setText(label or "Starting…")

    def elapsed(self) -> float:
        """Seconds since the run was asked for."""
        return time.monotonic() - self._started

    def show_progress(self, stage: str, step: int, total: int, message: str) -> None:
        """Overall progress across the stages, with the time left estimated from the time so far."""
        before = sum(STAGE_SHARES[s] for s in PROGRESS_STAGES[:PROGRESS_STAGES.index(stage)]) \
            if stage in STAGE_SHARES else 0.0
        fraction = min(1.0, before + STAGE_SHARES.get(stage, 0.0) * (step / total if total else 0.0))
        self.progress.setValue(int(fraction * 1000))
        if self._cancelling:
            return  # "Cancelling…" stays until the run has stopped
        elapsed = self.elapsed()
        eta = ""
        if fraction > 0.05 and elapsed > 1.0:
            # Never "about 0 s" while work remains: round up, at least a second.
            eta = f" · about {max(1, math.ceil(elapsed * (1 - fraction) / fraction))} s left"
        steps = f" (step {step}/{total})" if total > 1 and stage not in _UNCOUNTED else ""
        self.status.setText(f"{message or stage}{steps}{eta}")

    def show_cancelling(self) -> None:
        """At once, whatever progress still arrives: the run stops at its next check."""
        self._cancelling = True
        self.cancel.setEnabled(False)
        self.status.setText("Cancelling…")

    def show_done(self, text: str) -> None:
        self._finish()
        self.progress.setValue(1000)
        self.status.setText(text)

    def show_stopped(self, text: str) -> None:
        self._finish()
        self.progress.setValue(0)
        self.status.setText(text)

    def _finish(self) -> None:
        self._cancelling = self._running = False
        for button in (*self.stage_buttons.values(), self.run_all):
            button.setEnabled(True)
        self.cancel.setEnabled(False)
