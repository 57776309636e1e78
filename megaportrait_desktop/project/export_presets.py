"""Export presets, as a photographer sets up Lightroom's Export: format and quality, long edge, output
sharpening, sRGB, file naming, what metadata goes out, and several outputs in one go.

Privacy first: only the Archive preset carries MegaPortrait's provenance (the client's name, the
prompt, the project's paths); every delivery preset leaves it out, and leaves out where the reference
was shot (GPS). The project keeps the provenance of every output whatever is exported.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from ..core.delivery import SHARPENING, convert_to_srgb, resize_long_edge, sharpen_for_output, without_location
from ..core.imaging import Picture
from .errors import ProjectError
from .exchange import export_output
from .project import Project

FORMATS = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif"}
SHARPEN_MEDIA = ("none", *SHARPENING)
SHARPEN_STRENGTHS = ("low", "standard", "high")
#: Tokens a file-name pattern may use.
NAME_TOKENS = ("client", "reference", "id", "n", "date", "rating", "score", "project")
DEFAULT_PATTERN = "{client}_{reference}_{id}"
_BAD = re.compile(r'[<>:"/\\|?*\x00-\x1f]+')


@dataclass(frozen=True)
class ExportPreset:
    """Everything an export does to an output; ``long_edge=0`` keeps the full size."""

    name: str
    format: str = "jpeg"
    quality: int = 92
    long_edge: int = 0
    sharpen: str = "none"
    sharpen_strength: str = "standard"
    srgb: bool = True
    pattern: str = DEFAULT_PATTERN
    include_provenance: bool = False
    keep_exif: bool = True

    def check(self) -> ExportPreset:
        """The preset, if every field makes sense.

        Raises
        ------
        ProjectError
            Naming the field to fix.
        """
        if self.format not in FORMATS:
            raise ProjectError(f"Unknown export format '{self.format}'; choose {', '.join(FORMATS)}.")
        if not 1 <= self.quality <= 100:
            raise ProjectError("JPEG quality is 1 to 100.")
        if self.long_edge < 0 or self.long_edge > 100_000:
            raise ProjectError("The long edge is 0 (full size) or a size in pixels.")
        if self.sharpen not in SHARPEN_MEDIA or self.sharpen_strength not in SHARPEN_STRENGTHS:
            raise ProjectError(f"Sharpening is one of {', '.join(SHARPEN_MEDIA)}, at low, standard or high.")
        if self.srgb and self.format == "tiff":
            raise ProjectError("A 16-bit TIFF keeps its own colour profile; choose JPEG or PNG for sRGB.")
        file_name(self.pattern, _SAMPLE)  # raises for an unknown token
        return self

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> ExportPreset:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known}).check()


#: The presets that ship; a user's own are kept beside them in the UI settings.
BUILT_IN = (
    ExportPreset("Client delivery (full-size JPEG, sRGB)", quality=95, sharpen="screen", sharpen_strength="low"),
    # Public files: no client name in the file name either.
    ExportPreset("Web (2048 px JPEG, sRGB, sharpened for screen)", quality=85, long_edge=2048, sharpen="screen",
                 pattern="portrait_{date}_{n}", keep_exif=False),
    ExportPreset("Social media (1080 px JPEG)", quality=85, long_edge=1080, sharpen="screen",
                 pattern="portrait_{date}_{n}", keep_exif=False),
    ExportPreset("Print lab (full-size JPEG, sRGB, sharpened for glossy paper)", quality=100, sharpen="glossy"),
    ExportPreset("Retouching master (16-bit TIFF, own profile)", format="tiff", srgb=False),
    ExportPreset("Archive (PNG with MegaPortrait provenance)", format="png", srgb=False, pattern="{project}_{id}",
                 include_provenance=True),
)


def preset_named(name: str, presets: tuple[ExportPreset, ...] = BUILT_IN) -> ExportPreset:
    for preset in presets:
        if preset.name == name:
            return preset
    raise ProjectError(f"No export preset named '{name}'; the presets are: {'; '.join(p.name for p in presets)}.")


def file_name(pattern: str, values: dict[str, object]) -> str:
    """The file name (no suffix) that ``pattern`` gives for one output; unsafe characters become ``_``.

    Raises
    ------
    ProjectError
        For a token that is not one of :data:`NAME_TOKENS`, or a pattern that names nothing.
    """
    tokens = ", ".join("{" + t + "}" for t in NAME_TOKENS)
    try:
        # Plain tokens only: no attribute or index lookups ({client.x}, {0}) and no format specs.
        parts = list(string.Formatter().parse(pattern))
        bad = [f for _, f, spec, conv in parts if f is not None and (f not in NAME_TOKENS or spec or conv)]
        if bad:
            raise ValueError(f"unknown token {{{bad[0]}}}")
        name = "".join(text + ("" if f is None else str(values[f])) for text, f, _, _ in parts)
    except (KeyError, ValueError) as exc:
        raise ProjectError(f"The file name pattern '{pattern}' is not valid ({exc}); use the tokens "
                           f"{tokens}.") from None
    name = _BAD.sub("_", " ".join(name.split())).strip(" .")
    if not name:
        raise ProjectError(f"The file name pattern '{pattern}' gives an empty name.")
    return name[:180]


def name_values(project: Project, output_id: int, n: int) -> dict[str, object]:
    """The tokens' values for one output (``n``: its place in this export, from 1)."""
    out = project.output(output_id)
    return {"client": out.identity_name or "client", "reference": out.reference_name or "reference",
            "id": out.id, "n": f"{n:03d}", "date": dt.date.fromtimestamp(out.created).isoformat(),
            "rating": out.rating, "score": "na" if out.identity_score is None else f"{out.identity_score:.2f}",
            "project": project.name}


_SAMPLE = {"client": "Client", "reference": "reference", "id": 1, "n": "001", "date": "2025-01-01", "rating": 0,
           "score": "0.50", "project": "Project"}


def preparation(preset: ExportPreset) -> Callable[[Picture], Picture]:
    """What the preset does to the picture before it is encoded: GPS out (unless provenance is kept),
    resize, sRGB, then output sharpening last (it is tuned to the final pixel size)."""

    def prepare(picture: Picture) -> Picture:
        if not preset.include_provenance:
            picture = without_location(picture)
        if preset.long_edge:
            picture = resize_long_edge(picture, preset.long_edge)
        if preset.srgb:
            picture = convert_to_srgb(picture)
        if preset.sharpen != "none":
            picture = sharpen_for_output(picture, preset.sharpen, preset.sharpen_strength)
        return picture
    return prepare


def export_one(project: Project, output_id: int, dest: str | Path, preset: ExportPreset,
               on_progress: Callable[[float, str], None] | None = None) -> Path:
    """One output to ``dest`` with ``preset``'s settings (the file type follows ``dest``'s suffix);
    ``on_progress(fraction, what)`` as :func:`.exchange.export_output` reports it (it may raise to stop)."""
    return export_output(project, output_id, dest, quality=preset.check().quality, on_progress=on_progress,
                         include_provenance=preset.include_provenance, keep_exif=preset.keep_exif,
                         prepare=preparation(preset))


def export_with_preset(project: Project, output_ids: list[int], folder: str | Path, preset: ExportPreset,
                       on_progress: Callable[[float, int, str], None] | None = None) -> list[Path]:
    """Export several outputs into ``folder``, named by the preset's pattern (a name already there gets
    ``-2``, ``-3``…; nothing is overwritten). ``on_progress(done, total, what)`` while each file is read,
    encoded and written (``done`` counts files, a fraction for the one being written); it may raise (e.g.
    ``Cancelled``) to stop: the files written before stay, the one being written is not written."""
    preset.check()
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"The folder {folder} cannot be created ({exc.strerror}).") from None
    suffix = FORMATS[preset.format]
    written: list[Path] = []
    for n, output_id in enumerate(output_ids, start=1):
        stem = file_name(preset.pattern, name_values(project, output_id, n))
        dest = _free_path(folder, stem, suffix, written)
        report = None if on_progress is None else (
            lambda fraction, what, n=n: on_progress(n - 1 + fraction, len(output_ids), what))
        written.append(export_one(project, output_id, dest, preset, report))
    return written


def _free_path(folder: Path, stem: str, suffix: str, taken: list[Path]) -> Path:
    path = folder / f"{stem}{suffix}"
    count = 2
    while path.exists() or path in taken:
        path = folder / f"{stem}-{count}{suffix}"
        count += 1
    return path


def presets_from_json(text: str | None) -> tuple[ExportPreset, ...]:
    """The user's own presets as stored (a JSON list); a damaged entry is left out, never fatal."""
    if not text:
        return ()
    try:
        items = json.loads(text)
    except (TypeError, ValueError):
        return ()
    presets = []
    for item in items if isinstance(items, list) else []:
        try:
            presets.append(ExportPreset.from_json(item))
        except (ProjectError, TypeError, ValueError, AttributeError):
            continue
    return tuple(presets)


def presets_to_json(presets: tuple[ExportPreset, ...]) -> str:
    return json.dumps([p.to_json() for p in presets])


def with_name(preset: ExportPreset, name: str) -> ExportPreset:
    return replace(preset, name=" ".join(name.split()) or preset.name)
