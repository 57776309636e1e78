"""Mask painting on arrays, without widgets: strokes, undo/redo, feather, invert, reset."""

from __future__ import annotations

import numpy as np

from megaportrait_desktop.core.brush import Brush, MaskPainter
from megaportrait_desktop.core.masks import face_mask


def test_a_stroke_paints_along_its_path_and_is_one_undo_step(astronaut, astronaut_face) -> None:
    auto = (face_mask(astronaut_face.landmarks, astronaut.shape[:2]) * 255).astype(np.uint8)
    painter = MaskPainter(auto)
    before = painter.mask.copy()
    painter.begin_stroke(20, 400, Brush(size=20, hardness=1.0))
    for x in range(30, 200, 7):
        painter.stroke_to(x, 400)
    painter.end_stroke()
    assert painter.mask[400, 20] == 255 and painter.mask[400, 110] == 255 and painter.mask[400, 199] == 255
    assert painter.mask[400, 215] == 0 and painter.mask[380, 110] == 0  # outside the 20-px brush
    assert painter.mask[412, 110] == 0 and painter.mask[391, 110] == 255
    changed = painter.mask != before
    assert 0 < changed.sum() < 20 * 200
    assert painter.undo() and np.array_equal(painter.mask, before)
    assert painter.redo() and painter.mask[400, 110] == 255
    assert not painter.redo()


def test_eraser_soft_edge_and_opacity(astronaut) -> None:
    painter = MaskPainter(np.full((200, 200), 255, np.uint8))
    painter.begin_stroke(100, 100, Brush(size=40, hardness=0.0, erase=True))
    painter.end_stroke()
    assert painter.mask[100, 100] == 0 and painter.mask[100, 125] == 255
    ring = painter.mask[100, 100:121]
    assert (np.diff(ring.astype(int)) >= 0).all() and 0 < ring[10] < 255  # a soft falloff

    half = MaskPainter(np.zeros((100, 100), np.uint8))
    half.begin_stroke(20, 50, Brush(size=30, hardness=1.0, opacity=0.5))
    for x in range(20, 80, 2):  # dabs overlap many times, coverage stays at the opacity
        half.stroke_to(x, 50)
    half.end_stroke()
    assert half.mask[50, 50] == 128


def test_feather_invert_reset_each_undoable() -> None:
    auto = np.zeros((64, 64), np.uint8)
    auto[16:48, 16:48] = 255
    painter = MaskPainter(auto)
    painter.begin_stroke(5, 5, Brush(size=6, hardness=1.0))
    painter.end_stroke()
    edited = painter.mask.copy()
    painter.invert()
    assert np.array_equal(painter.mask, 255 - edited)
    painter.feather(3)
    assert 0 < painter.mask[16, 32] < 255
    painter.reset()
    assert np.array_equal(painter.mask, auto)
    painter.undo()
    painter.undo()
    assert np.array_equal(painter.mask, 255 - edited)
    painter.undo()
    assert np.array_equal(painter.mask, edited)
    painter.undo()
    assert np.array_equal(painter.mask, auto) and not painter.can_undo


def test_strokes_on_a_24_megapixel_mask_touch_only_their_tiles() -> None:
    painter = MaskPainter(np.zeros((4000, 6000), np.uint8))
    painter.begin_stroke(100, 100, Brush(size=120))
    for i in range(1, 60):
        painter.stroke_to(100 + i * 40, 100 + i * 20)
    painter.end_stroke()
    step = painter._undo[-1]
    saved = sum(t.nbytes for t in step.tiles.values())
    assert saved < 0.1 * painter.mask.nbytes  # the undo step holds the touched tiles (24), not the mask
    x0, y0, x1, y1 = painter.take_dirty()
    assert x0 <= 40 and y0 <= 40 and 2400 <= x1 <= 2600 and 1250 <= y1 <= 1400
    assert painter.take_dirty() is None
