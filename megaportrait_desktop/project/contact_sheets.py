"""A contact sheet of a project's outputs, each with its identity verdict (``project contact-sheet``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.contact_sheet import Tile, save_contact_sheet
from .project import Output, Project


def output_tiles(project: Project, outputs: Sequence[Output]) -> list[Tile]:
    """One tile per output, from its thumbnail (or its final image when the thumbnail is gone)."""
    tiles = []
    for out in outputs:
        path = project.path_of(out.thumb_path or out.final_path)
        with Image.open(path) as im:
            image = np.asarray(im.convert("RGB"))
        report = out.identity_report or {}
        lines = []
        if report:
            held = report.get("held_out_distance")
            client = held if held is not None else report.get("set_distance")
            lines.append(f"client {client:.2f}" + ("" if held is not None else " (set)")
                         + ("" if report.get("reference_distance") is None
                            else f" · ref {report['reference_distance']:.2f}"))
        elif out.identity_score is not None:
            lines.append(f"score {out.identity_score:.3f}")
        # Plain words: the sheet's built-in font has no arrow, dash or star glyphs (they drew as boxes).
        lines.append(f"{out.engine} · {f'{out.rating}/5' if out.rating else 'unrated'}")
        tiles.append(Tile(image, f"#{out.id} {out.identity_name or '?'} on {out.reference_name or '?'}",
                          tuple(lines), out.verdict))
    return tiles


def write_contact_sheet(project: Project, outputs: Sequence[Output], path: str | Path, columns: int = 6,
                        tile_size: int = 192, title: str | None = None) -> Path:
    """Write the outputs' contact sheet as PNG; ``title`` defaults to the project's name."""
    return save_contact_sheet(path, output_tiles(project, outputs), columns=columns, tile_size=tile_size,
                              title=title if title is not None else f"{project.name}: {len(outputs)} outputs")
