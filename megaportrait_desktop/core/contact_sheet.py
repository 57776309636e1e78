"""A contact sheet: outputs side by side, each with its identity verdict, drawn with PIL into one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .identity_report import VERDICT_LABELS

#: Badge colours by verdict: green the client, amber a mix, red still the reference person; grey unknown.
VERDICT_COLOURS = {"client": (46, 160, 67), "mix": (219, 150, 20), "reference": (207, 34, 46), None: (110, 110, 110)}
BACKGROUND = (250, 250, 250)
TEXT = (20, 20, 20)
MUTED = (90, 90, 90)


@dataclass(frozen=True, eq=False)
class Tile:
    """One picture on the sheet: uint8 RGB, a title, caption lines, and its verdict code (or ``None``)."""

    image: np.ndarray
    title: str = ""
    lines: tuple[str, ...] = ()
    verdict: str | None = None


def contact_sheet(tiles: Sequence[Tile], columns: int = 4, tile_size: int = 256, title: str = "",
                  row_labels: Sequence[str] = ()) -> Image.Image:
    """The sheet as a PIL image: ``columns`` tiles a row, each picture fitted into ``tile_size`` pixels.

    ``row_labels`` (optional) are written at the left of each row.
    """
    if not tiles:
        raise ValueError("a contact sheet needs at least one picture")
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    font = _font(max(11, tile_size // 18))
    small = _font(max(10, tile_size // 21))
    line_h = _line_height(small)
    n_lines = max(len(t.lines) for t in tiles) + 1  # the title line
    badge_h = _line_height(font) + 6
    cell_w, cell_h = tile_size + 12, tile_size + badge_h + n_lines * line_h + 14
    label_w = (max(_text_width(small, label) for label in row_labels) + 16) if row_labels else 0
    head_h = _line_height(font) + 16 if title else 0
    sheet = Image.new("RGB", (label_w + columns * cell_w + 8, head_h + rows * cell_h + 8), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((10, 8), title, fill=TEXT, font=font)
    for i, tile in enumerate(tiles):
        row, col = divmod(i, columns)
        x, y = label_w + 8 + col * cell_w, head_h + 4 + row * cell_h
        thumb = Image.fromarray(np.ascontiguousarray(tile.image[:, :, :3]).astype(np.uint8))
        thumb.thumbnail((tile_size, tile_size), Image.Resampling.LANCZOS)
        sheet.paste(thumb, (x + (tile_size - thumb.width) // 2, y + (tile_size - thumb.height) // 2))
        by = y + tile_size + 4
        colour = VERDICT_COLOURS.get(tile.verdict, VERDICT_COLOURS[None])
        draw.rectangle((x, by, x + tile_size, by + badge_h - 2), fill=colour)
        label = VERDICT_LABELS.get(tile.verdict, "no identity report") if tile.verdict else "no identity report"
        draw.text((x + 6, by + 2), label, fill=(255, 255, 255), font=font)
        ty = by + badge_h + 2
        for text, fill in ((tile.title, TEXT), *((line, MUTED) for line in tile.lines)):
            draw.text((x + 2, ty), _fit(small, text, tile_size), fill=fill, font=small)
            ty += line_h
    for row, label in enumerate(row_labels[:rows]):
        draw.text((8, head_h + 4 + row * cell_h + tile_size // 2), _fit(small, label, label_w - 12), fill=TEXT,
                  font=small)
    return sheet


def save_contact_sheet(path: str | Path, tiles: Sequence[Tile], **options) -> Path:
    """Draw the sheet (see :func:`contact_sheet`) and write it as PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles, **options).save(path, format="PNG", optimize=True)
    return path


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    # Pillow's built-in font scales when FreeType is there (it is in the wheels); else its bitmap font.
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # pragma: no cover - Pillow built without FreeType
        return ImageFont.load_default()


def _line_height(font) -> int:
    box = font.getbbox("Ag")
    return int(box[3] - box[1]) + 4


def _text_width(font, text: str) -> int:
    box = font.getbbox(text)
    return int(box[2] - box[0])


def _fit(font, text: str, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "…") > width:
        text = text[:-1]
    return text + "…"
