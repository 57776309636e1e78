"""The names of a run's stage images and of the points where a run may stop, shared by core, CLI and UI.

Both are string enums: a member is its own name wherever a string is stored (the project's
``output_stages`` rows, file names, JSON).
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A run's stage images, in pipeline order: crop-space ones first, full-resolution ones last."""

    REFERENCE = "reference"
    A = "A"
    B = "B"
    LIGHT_MAP = "light_map"
    HF_MAP = "hf_map"
    SHADED = "shaded"
    MASK = "mask"
    PASTED = "pasted"
    FINAL = "final"


class Stop(StrEnum):
    """Where a run may stop early (the app's per-stage buttons); no stop runs everything."""

    IDENTITY = "identity"    # the pair A and B
    SHADING = "shading"      # up to the pasted face
    HARMONIZE = "harmonize"  # everything


#: Stage images in pipeline order.
STAGES: tuple[Stage, ...] = tuple(Stage)
#: Stage images a run that stopped at each point has.
STAGES_UNTIL: dict[Stop, tuple[Stage, ...]] = {
    Stop.IDENTITY: (Stage.REFERENCE, Stage.A, Stage.B),
    Stop.SHADING: STAGES[:-1],
    Stop.HARMONIZE: STAGES,
}


def stages_to_keep(stages: dict, roi: tuple[int, int, int, int] | None) -> tuple[dict, dict[str, tuple[int, int]]]:
    """The stage images a project stores for a run, and where each crop lies in the output.

    All but the final (the final is stored as itself). The full-resolution ``pasted`` stage differs from
    the final only inside ``roi`` (the paste region with its seam band), so that crop is kept, at its
    offset ``(x0, y0)``; the others are crop-space images kept whole (offset ``(0, 0)``).
    """
    kept = {name: image for name, image in stages.items() if name != Stage.FINAL}
    offsets: dict[str, tuple[int, int]] = {}
    if roi is not None and Stage.PASTED in kept:
        x0, y0, x1, y1 = roi
        kept[Stage.PASTED] = kept[Stage.PASTED][y0:y1, x0:x1]
        offsets[Stage.PASTED] = (x0, y0)
    return kept, offsets
