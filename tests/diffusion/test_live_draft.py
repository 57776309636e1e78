"""The diffusion result live under the sliders, and drafts in History (tiny models on the CPU)."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from megaportrait_desktop.core.diffusion import synthetic
from megaportrait_desktop.core.diffusion.live import DraftPreview
from megaportrait_desktop.core.model_settings import ModelSpec, save_settings
from megaportrait_desktop.core.request import DiffusionParams, RunRequest
from megaportrait_desktop.core.stages import Stage
from megaportrait_desktop.project import OutputQuery, list_outputs
from megaportrait_desktop.project.demo import ensure_demo_project
from megaportrait_desktop.ui.app import create_window
from megaportrait_desktop.ui.preview import DRAFT, LivePreview

from .conftest import CROP, settings_for


@pytest.fixture(scope="module")
def speed_lora(tmp_path_factory) -> str:
    return str(synthetic.save_speed_lora("tiny", tmp_path_factory.mktemp("speed")))


def test_the_live_preview_drops_stale_requests_and_ends_on_the_newest_value(qtbot, engine, photo_files,
                                                                           speed_lora) -> None:
    lock = threading.Lock()
    preview = LivePreview(lambda: engine, lock, allow_cpu_draft=True)
    save_settings(replace(engine.settings, models={**engine.settings.models, "speed_lora": ModelSpec(speed_lora)}))
    modes, results = [], []
    preview.mode_changed.connect(modes.append)
    preview.ready.connect(lambda generation, images: results.append((generation, images)))
    base = RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                      engine="diffusion", crop_size=CROP, steps=8, seed=4,
                      diffusion=DiffusionParams(speed_lora=speed_lora, guidance_scale=2.0, preview_every=0))
    # A slider dragged from 4 to 30: far more requests than renders.
    values = np.linspace(4.0, 30.0, 40)
    last = 0
    for value in values:
        last = preview.submit(base.replace(shading=replace(base.shading, light_cutoff=float(value))))
    qtbot.waitUntil(lambda: bool(results) and results[-1][0] == last, timeout=120_000)
    preview.shutdown()
    assert modes == [DRAFT]
    assert preview.dropped > 0 and len(results) < len(values)  # the stale ones were never rendered
    assert [g for g, _ in results] == sorted(g for g, _ in results)  # never an older one after a newer
    newest = base.replace(shading=replace(base.shading, light_cutoff=float(values[-1])))
    expected = DraftPreview(lambda: engine, lock)(newest)
    assert np.array_equal(results[-1][1][Stage.SHADED], expected[Stage.SHADED])


def test_a_shading_slider_re_renders_only_the_shading(engine, photo_files, speed_lora) -> None:
    preview = DraftPreview(lambda: engine)
    request = RunRequest(identity=(str(photo_files["grace"]),), reference=str(photo_files["reference"]),
                         engine="diffusion", crop_size=CROP, seed=4,
                         diffusion=DiffusionParams(speed_lora=speed_lora, preview_every=0))
    first = preview(request)
    assert preview.rendered == "pair+shading"
    second = preview(request.replace(shading=replace(request.shading, detail_weight=1.6)))
    assert preview.rendered == "shading" and np.array_equal(first[Stage.B], second[Stage.B])
    assert not np.array_equal(first[Stage.SHADED], second[Stage.SHADED])
    preview(request.replace(identity_params=replace(request.identity_params, b_strength=0.5)))
    assert preview.rendered == "pair+shading"


def test_a_draft_is_recorded_as_a_draft_and_runs_again_as_final(qtbot, tmp_path, tiny_models, speed_lora) -> None:
    save_settings(replace(settings_for(tiny_models["folders"]),
                          models={**settings_for(tiny_models["folders"]).models, "speed_lora": ModelSpec(speed_lora)}))
    window = create_window(ensure_demo_project(tmp_path / "demo"))
    qtbot.addWidget(window)
    window.show()
    try:
        session = window.session
        for path, value in (("engine", "diffusion"), ("crop_size", CROP), ("steps", 4),
                            ("diffusion.quality", "draft")):
            session.set(path, value)
        assert window.panel.quality.currentData() == "draft"
        with qtbot.waitSignal(window.jobs.run_finished, timeout=180_000) as drafted:
            window.run_pipeline("all")
        draft = window.project.output(drafted.args[0].output_id)
        assert draft.request["diffusion"]["quality"] == "draft"
        history = window.history
        history.quality_filter.setCurrentIndex(history.quality_filter.findData("draft"))
        assert history.list.count() == 1 and "DRAFT" in history.list.item(0).text()
        history.list.setCurrentRow(0)
        with qtbot.waitSignal(window.jobs.run_finished, timeout=180_000) as finished:
            history.buttons["final"].click()
        final = window.project.output(finished.args[0].output_id)
        assert final.id != draft.id and final.request["diffusion"]["quality"] == "final"
        assert {k: v for k, v in final.request.items() if k != "diffusion"} == \
            {k: v for k, v in draft.request.items() if k != "diffusion"}  # the same settings, now at Final
        finals = list_outputs(window.project, OutputQuery(quality="final")).items
        assert [o.id for o in finals] == [final.id]
    finally:
        window.shutdown()
