"""The session model: the preview is the run, Recall is exact, sliders reset, one request for everything."""

from __future__ import annotations

import random

import numpy as np
import pytest
from PySide6.QtCore import Qt

from megaportrait_desktop.core.brush import Brush
from megaportrait_desktop.core.live_preview import ClassicPreview
from megaportrait_desktop.core.pipeline import run
from megaportrait_desktop.core.stages import Stage
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.images import from_qimage

# Every slider that changes the shaded crop, with the range the panel offers.
SLIDERS = {"identity_params.a_strength": (0.0, 1.0), "identity_params.b_strength": (0.0, 1.0),
           "shading.light_cutoff": (1.0, 60.0), "shading.hf_cutoff": (1.0, 60.0),
           "shading.light_weight": (0.0, 1.0), "shading.detail_weight": (0.0, 2.0)}


@pytest.fixture
def window(qtbot, tmp_path):
    win = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitUntil(lambda: Stage.SHADED in win.stage_view.images, timeout=20_000)
    yield win
    win.close()


def _random_settings(session, rng: random.Random) -> None:
    for path, (low, high) in SLIDERS.items():
        session.set(path, round(rng.uniform(low, high), 4))


def test_preview_matches_run(window) -> None:
    """For 20 random slider settings the preview's shaded crop is the classic run's shaded stage."""
    session = window.session
    rng = random.Random(7)
    live = ClassicPreview()
    for _ in range(20):
        _random_settings(session, rng)
        request = session.request
        preview = live(request)  # what the live preview computes, through its caches
        result = run(request, until="shading")
        for stage in (Stage.A, Stage.B, Stage.LIGHT_MAP, Stage.HF_MAP, Stage.SHADED):
            difference = np.abs(preview[stage].astype(int) - result.stages[stage].astype(int)).max()
            assert difference <= 1, (stage, request.identity_params, request.shading, difference)


def test_every_shading_slider_reaches_the_canvas(window, qtbot) -> None:
    """Moving each slider in the panel changes what the canvas shows, and it is the run's shaded crop."""
    window.stage_view.show_stage(Stage.SHADED)
    panel = window.panel
    # (A only shows through the light map: move it while the light still comes from A.)
    for widget, value in ((panel.a_strength, 0.6), (panel.b_strength, 0.5), (panel.light_weight, 0.3),
                          (panel.detail_weight, 1.7), (panel.light_cutoff, 25.0), (panel.hf_cutoff, 4.0)):
        before = from_qimage(window.canvas.image())
        widget.setValue(value)
        qtbot.waitUntil(lambda b=before: not np.array_equal(from_qimage(window.canvas.image()), b), timeout=10_000)
    expected = run(window.session.request, until="shading").stages[Stage.SHADED]
    qtbot.waitUntil(lambda: np.abs(from_qimage(window.canvas.image()).astype(int) - expected).max() <= 1,
                    timeout=10_000)


def test_recall_reproduces_the_output_bytes(window, qtbot) -> None:
    session, project = window.session, window.project
    reference_id = session.reference_id
    # A user mask version and non-default settings for the first run.
    painter = window.mask_editor.painter
    painter.begin_stroke(256, 420, Brush(size=60, hardness=0.8))
    painter.stroke_to(300, 430)
    painter.end_stroke()
    window.mask_editor.dirty = True
    for path, value in (("shading.light_cutoff", 17.0), ("identity_params.a_strength", 0.25),
                        ("harmonize.seam_width", 14.0), ("seed", 3), ("crop_size", 384),
                        ("mask_params.feather", 9.0)):
        session.set(path, value)
    with qtbot.waitSignal(window.jobs.run_finished, timeout=60_000) as first:
        window.run_pipeline("all")
    first_output = project.output(first.args[0].output_id)
    recalled_mask = session.mask_path
    assert recalled_mask and project.current_mask(reference_id).source == "user"

    # Change every setting and the mask (a new mask version), then Recall the first output.
    rng = random.Random(3)
    _random_settings(session, rng)
    for path, value in (("harmonize.seam_width", 30.0), ("seed", 99), ("crop_size", 512), ("engine", "diffusion"),
                        ("mask_params.feather", 2.0), ("harmonize.strength", 0.4)):
        session.set(path, value)
    window.mask_editor.painter.reset()
    window.mask_editor.dirty = True
    window.save_mask()
    assert session.mask_path != recalled_mask
    window.history_actions.recall(first_output.id)
    assert session.mask_path == recalled_mask  # the mask version is part of the recalled request
    assert window.panel.light_cutoff.value() == pytest.approx(17.0) and window.panel.seed.value() == 3
    assert window.panel.engine.currentData() == "classic"

    with qtbot.waitSignal(window.jobs.run_finished, timeout=60_000) as second:
        window.run_pipeline("all")
    second_output = project.output(second.args[0].output_id)
    assert second_output.id != first_output.id
    assert second_output.request == first_output.request
    assert project.path_of(second_output.final_path).read_bytes() == project.path_of(first_output.final_path) \
        .read_bytes()


def test_double_click_resets_a_slider_and_reset_all_resets_every_one(window, qtbot) -> None:
    panel, session = window.panel, window.session
    panel.light_cutoff.setValue(33.0)
    panel.detail_weight.setValue(1.5)
    assert session.get("shading.light_cutoff") == 33.0
    slider = panel.light_cutoff._slider  # the slider inside superqt's labelled slider
    qtbot.mouseDClick(slider, Qt.MouseButton.LeftButton)
    assert session.get("shading.light_cutoff") == 10.0 and panel.light_cutoff.value() == pytest.approx(10.0)
    assert session.get("shading.detail_weight") == 1.5  # only that one
    panel.reset_all.click()
    assert session.get("shading.detail_weight") == 1.0 and panel.detail_weight.value() == pytest.approx(1.0)


def test_the_run_and_the_request_come_from_the_session_only(window, qtbot, tmp_path) -> None:
    """The same request object runs, previews and is stored: identity LoRA and trigger token included."""
    session = window.session
    identity = window.project.identity(session.identity_id)
    request = session.request
    assert request.diffusion.prompt == f"a photo of {identity.trigger_token} person"
    assert request.reference.endswith(window.project.reference(session.reference_id).path.split("/")[-1])
    session.set("shading.hf_cutoff", 21.0)
    with qtbot.waitSignal(window.jobs.run_finished, timeout=60_000) as done:
        window.run_pipeline("all")
    stored = window.project.output(done.args[0].output_id).request
    assert stored["shading"]["hf_cutoff"] == 21.0
    assert stored == window.project.portable_request(done.args[0].result.request.to_dict())

