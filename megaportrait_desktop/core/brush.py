"""Mask painting on arrays (no Qt): brush and eraser strokes, feather, invert, reset, undo and redo.

One stroke is one undo step (as in napari's ``draw``): :meth:`MaskPainter.begin_stroke`, any
number of :meth:`MaskPainter.stroke_to`, then :meth:`MaskPainter.end_stroke`. Work is kept to the
tiles a stroke touches, so a stroke on a 24-megapixel mask costs about what it covers, and an undo
step stores only those tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

TILE = 256
MAX_UNDO = 50


@dataclass(frozen=True)
class Brush:
    """A round brush: ``size`` is the diameter in mask pixels; ``hardness`` the fully opaque share of
    the radius (1 = hard edge); ``opacity`` the most one stroke adds; ``erase`` paints 0 instead of 1."""

    size: float = 60.0
    hardness: float = 0.6
    opacity: float = 1.0
    erase: bool = False


@dataclass
class _Step:
    """What one undoable action replaced: tiles (by tile index) or, for whole-mask actions, all of it."""

    tiles: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)
    whole: np.ndarray | None = None


class MaskPainter:
    """Holds a ``uint8`` mask (0 = keep the reference, 255 = take the new face) and edits it."""

    def __init__(self, mask: np.ndarray, auto_mask: np.ndarray | None = None) -> None:
        self.mask = _as_uint8(mask).copy()
        self.auto_mask = _as_uint8(auto_mask if auto_mask is not None else mask).copy()
        self._undo: list[_Step] = []
        self._redo: list[_Step] = []
        self._stroke: _Step | None = None
        self._coverage: dict[tuple[int, int], np.ndarray] = {}
        self._brush = Brush()
        self._last: tuple[float, float] | None = None
        self._leftover = 0.0
        #: Bounding box (x0, y0, x1, y1) changed since the last :meth:`take_dirty`, for partial redraws.
        self._dirty: list[int] | None = None

    # ------------------------------------------------------------------ state

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def take_dirty(self) -> tuple[int, int, int, int] | None:
        """The region changed since the last call (or ``None``), for the canvas to repaint."""
        dirty, self._dirty = self._dirty, None
        return None if dirty is None else (dirty[0], dirty[1], dirty[2], dirty[3])

    # ------------------------------------------------------------------ strokes

    def begin_stroke(self, x: float, y: float, brush: Brush) -> None:
        """Start a stroke with a dab at (x, y)."""
        if self._stroke is not None:
            self.end_stroke()
        self._stroke = _Step()
        self._coverage = {}
        self._brush = brush
        self._last = (x, y)
        self._leftover = 0.0
        self._dab(x, y)

    def stroke_to(self, x: float, y: float) -> None:
        """Continue the stroke to (x, y), with dabs spaced a quarter of the brush size apart."""
        if self._stroke is None or self._last is None:
            return
        x0, y0 = self._last
        length = math.hypot(x - x0, y - y0)
        spacing = max(1.0, self._brush.size * 0.25)
        t = spacing - self._leftover
        while t <= length:
            f = t / length
            self._dab(x0 + f * (x - x0), y0 + f * (y - y0))
            t += spacing
        self._leftover = length - (t - spacing)
        self._last = (x, y)

    def end_stroke(self) -> None:
        """Finish the stroke: it becomes one undo step."""
        if self._stroke is not None and self._stroke.tiles:
            self._push(self._stroke)
        self._stroke = None
        self._coverage = {}
        self._last = None

    def _dab(self, cx: float, cy: float) -> None:
        brush = self._brush
        r = max(0.5, brush.size / 2)
        h, w = self.mask.shape
        x0, x1 = max(0, int(math.floor(cx - r))), min(w, int(math.ceil(cx + r)) + 1)
        y0, y1 = max(0, int(math.floor(cy - r))), min(h, int(math.ceil(cy + r)) + 1)
        if x0 >= x1 or y0 >= y1:
            return
        yy, xx = np.ogrid[y0:y1, x0:x1]
        dist = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2, dtype=np.float32)
        inner = r * min(max(brush.hardness, 0.0), 0.999)
        alpha = np.clip((r - dist) / max(r - inner, 1e-3), 0.0, 1.0) * np.float32(brush.opacity)
        target = 0.0 if brush.erase else 255.0
        for (ty, tx), (sy, sx) in _tiles(y0, y1, x0, x1):
            key = (ty, tx)
            tile_y, tile_x = ty * TILE, tx * TILE
            if key not in self._stroke.tiles:
                region = self.mask[tile_y:tile_y + TILE, tile_x:tile_x + TILE]
                self._stroke.tiles[key] = region.copy()
                self._coverage[key] = np.zeros(region.shape, np.float32)
            cover = self._coverage[key]
            local = (slice(sy.start - tile_y, sy.stop - tile_y), slice(sx.start - tile_x, sx.stop - tile_x))
            # Coverage within a stroke is the max of its dabs: overlapping dabs never exceed the opacity.
            np.maximum(cover[local], alpha[sy.start - y0:sy.stop - y0, sx.start - x0:sx.stop - x0], out=cover[local])
            before = self._stroke.tiles[key][local].astype(np.float32)
            painted = before + cover[local] * (target - before)
            self.mask[sy, sx] = np.rint(painted).astype(np.uint8)
        self._mark(x0, y0, x1, y1)

    # ------------------------------------------------------------------ whole-mask actions

    def feather(self, pixels: float) -> None:
        """Soften every edge by a Gaussian of ``pixels`` (one undo step)."""
        if pixels <= 0:
            return
        self._whole_step()
        self.mask = cv2.GaussianBlur(self.mask, (0, 0), pixels)
        self._mark_all()

    def invert(self) -> None:
        self._whole_step()
        self.mask = 255 - self.mask
        self._mark_all()

    def reset(self) -> None:
        """Back to the automatic mask (one undo step)."""
        self._whole_step()
        self.mask = self.auto_mask.copy()
        self._mark_all()

    def _whole_step(self) -> None:
        self.end_stroke()
        self._push(_Step(whole=self.mask.copy()))

    # ------------------------------------------------------------------ undo / redo

    def undo(self) -> bool:
        return self._swap(self._undo, self._redo)

    def redo(self) -> bool:
        return self._swap(self._redo, self._undo)

    def _push(self, step: _Step) -> None:
        self._undo.append(step)
        del self._undo[:-MAX_UNDO]
        self._redo.clear()

    def _swap(self, source: list[_Step], target: list[_Step]) -> bool:
        self.end_stroke()
        if not source:
            return False
        step = source.pop()
        if step.whole is not None:
            target.append(_Step(whole=self.mask.copy()))
            self.mask = step.whole
            self._mark_all()
        else:
            current = _Step()
            for (ty, tx), saved in step.tiles.items():
                y, x = ty * TILE, tx * TILE
                region = self.mask[y:y + saved.shape[0], x:x + saved.shape[1]]
                current.tiles[(ty, tx)] = region.copy()
                region[...] = saved
                self._mark(x, y, x + saved.shape[1], y + saved.shape[0])
            target.append(current)
        return True

    # ------------------------------------------------------------------ dirty region

    def _mark(self, x0: int, y0: int, x1: int, y1: int) -> None:
        if self._dirty is None:
            self._dirty = [x0, y0, x1, y1]
        else:
            d = self._dirty
            d[0], d[1], d[2], d[3] = min(d[0], x0), min(d[1], y0), max(d[2], x1), max(d[3], y1)

    def _mark_all(self) -> None:
        h, w = self.mask.shape
        self._dirty = [0, 0, w, h]


def _tiles(y0: int, y1: int, x0: int, x1: int):
    """The tiles a box touches, each with the box's part in it (as image slices)."""
    for ty in range(y0 // TILE, (y1 - 1) // TILE + 1):
        for tx in range(x0 // TILE, (x1 - 1) // TILE + 1):
            sy = slice(max(y0, ty * TILE), min(y1, (ty + 1) * TILE))
            sx = slice(max(x0, tx * TILE), min(x1, (tx + 1) * TILE))
            yield (ty, tx), (sy, sx)


def _as_uint8(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.dtype == np.uint8:
        return mask
    return np.clip(np.rint(mask.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
