"""``evaluate``: every identity × reference pair, scored by the identity recogniser, so any engine or setting
can be judged by numbers.

Protocol (leave-one-out): for an identity with photos P1…Pn (n ≥ 2), each photo Ph is held out in turn; the
run gets the other photos, and the output is compared with Ph, a photo it never saw. An identity with one
photo runs with it and has no held-out evidence (its rows say so and stay out of the summary).

Methods, each scored the same way:

- ``reference``: the untouched reference (nothing moved);
- ``naive paste``: the client photo the engine would choose, aligned the same way, pasted with a hard edge
  (no shading, no colour match, no blending): what identity a crude paste carries, and what seam it leaves;
- ``<engine>``: the engine at the request's settings, and one method per ``--sweep`` value;
- ``client photo``: the chosen client photo itself (not pasted): how close a real photo of the client is.

Measures (dlib convention: Euclidean distance of descriptors, same person below the threshold, 0.6):

- ``d_client``: distance from the output face to the held-out photo;
- ``d_ref``: distance to the reference person (the reference's face before the run);
- ``success``: ``d_client < threshold`` and ``d_ref ≥ threshold`` (the client, and not the reference person);
- ``transfer``: ``(D_ref − d_client) / (D_ref − D_own)`` with ``D_ref`` the untouched reference's distance to
  the held-out photo and ``D_own`` the chosen client photo's: 0 = nothing moved, 1 = as close to the held-out
  photo as the client's own photo is (above 1 is closer still); undefined when ``D_ref − D_own < 0.05``;
- ``seam``: :func:`seam.seam_step`, the excess step across the edge of the changed region, 8-bit levels;
- ``outside``: pixels changed outside the method's declared region (the engine's harmonisation region,
  the paste's mask): 0 means every other pixel is bit-identical to the reference;
- ``light`` and ``colour``: did the output keep the reference's light (:mod:`.lighting`): the correlation of
  the two faces' light maps over the skin both show (1 = the same light and shade), and the ΔE between
  their mean skin colour (a*, b*; 0 = the same colour);
- ``seconds``: the method's own time (the engine's run, less its identity scoring).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import classic
from .align import crop_face
from .errors import FaceError, ImageError, RequestError
from .face import Face, detect_faces
from .identity import EmbeddingBackend, distance, load_embedding_backend
from .identity_report import output_face, verdict_of
from .imaging import load_image, to_float, to_uint8
from .lighting import light_agreement
from .quality import SetPhoto, check_identity_set
from .request import IdentityParams, MaskParams, RunRequest
from .seam import changed_outside, seam_step

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".webp"}
REFERENCE, PASTE, CLIENT_PHOTO = "reference", "naive paste", "client photo"
#: The least ``D_ref − D_own`` for which transfer is defined (the client photo must be clearly closer).
MIN_TRANSFER_SPAN = 0.05

#: Called after each scored output: (done, total, the row).
EvalProgress = Callable[[int, int, "Row"], None]


@dataclass(frozen=True, eq=False)
class Photo:
    """One photo of a person, analysed once: 8-bit RGB, its face (largest), how many faces, its embedding."""

    person: str
    path: Path
    rgb: np.ndarray
    face: Face
    face_count: int
    embedding: np.ndarray

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Sweep:
    """One request field (dotted, e.g. ``shading.light_cutoff``) and the values to try."""

    field: str
    values: tuple[Any, ...]

    def label(self, value: Any) -> str:
        return f"{self.field}={value}"


@dataclass(frozen=True)
class Row:
    """One scored output."""

    identity: str
    held_out: str  # "" when the identity has one photo
    reference: str
    method: str
    source: str
    d_client: float
    d_ref: float
    verdict: str
    success: bool
    transfer: float | None
    seam: float | None
    outside: int | None
    seconds: float | None
    light: float | None = None
    colour: float | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"warnings": list(self.warnings)}


@dataclass(frozen=True)
class Summary:
    """One method's figures over the rows with a held-out photo."""

    method: str
    n: int
    d_client: float
    d_ref: float
    success: float
    transfer: float | None
    seam: float | None
    outside: int | None
    seconds: float | None
    verdicts: dict[str, int]
    light: float | None = None
    colour: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Evaluation:
    rows: tuple[Row, ...]
    summaries: tuple[Summary, ...]
    methods: tuple[str, ...]
    engine_method: str
    sweeps: tuple[Sweep, ...]
    threshold: float
    backend: str
    identities: dict[str, list[str]]
    references: list[str]
    set_warnings: dict[str, list[str]]
    skipped: list[str]
    #: Per row key (identity, held-out, reference): method → output image (uint8 RGB), for the sheet.
    images: dict[tuple[str, str, str], dict[str, np.ndarray]] = field(default_factory=dict, repr=False)


# ------------------------------------------------------------------------------------------ inputs


def find_people(folders: Sequence[str | Path]) -> dict[str, list[Path]]:
    """People by name: a folder holding photos is one person (its name); its sub-folders with photos are more."""
    people: dict[str, list[Path]] = {}
    for folder in map(Path, folders):
        if folder.is_file() and folder.suffix.lower() in IMAGE_SUFFIXES:
            people.setdefault(folder.parent.name, []).append(folder)
            continue
        if not folder.is_dir():
            raise RequestError(f"{folder}: no such folder.")
        for place in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())):
            photos = sorted(p for p in place.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if photos:
                people.setdefault(place.name, []).extend(photos)
    if not people:
        raise RequestError(f"No photos (JPEG, PNG, TIFF or WebP) in {', '.join(map(str, folders))}.")
    return people


def parse_sweep(text: str) -> Sweep:
    """``PARAM=v1,v2,...`` → :class:`Sweep`; ``PARAM`` is a request field, dotted for a group's field."""
    name, sep, values = text.partition("=")
    name = name.strip()
    if not sep or not name or not values.strip():
        raise RequestError(f"--sweep {text!r}: write it as PARAM=v1,v2 (e.g. shading.light_cutoff=5,10,20).")
    parsed = tuple(_value(v.strip()) for v in values.split(",") if v.strip())
    sweep = Sweep(name, parsed)
    for value in parsed:  # every value must make a valid request: fail now, not after an hour of runs
        with_setting(RunRequest(identity=("x",), reference="x"), name, value)
    return sweep


def with_setting(request: RunRequest, dotted: str, value: Any) -> RunRequest:
    """``request`` with the field ``dotted`` (``"seed"``, ``"shading.light_cutoff"``) set to ``value``."""
    head, _, tail = dotted.partition(".")
    names = {f.name for f in dataclasses.fields(RunRequest)}
    if head not in names or head in ("identity", "reference"):
        raise RequestError(f"Unknown setting {dotted!r}; use a run request field such as shading.light_cutoff.")
    if not tail:
        return request.replace(**{head: value})
    group = getattr(request, head)
    fields = [f.name for f in dataclasses.fields(group)] if dataclasses.is_dataclass(group) else []
    if tail not in fields:
        raise RequestError(f"Unknown setting {dotted!r}; "
                           + (f"{head} has {', '.join(fields)}." if fields else f"{head} has no fields."))
    return request.replace(**{head: dataclasses.replace(group, **{tail: value})})


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


# ------------------------------------------------------------------------------------------ running


def evaluate(identities: Sequence[str | Path], references: Sequence[str | Path], *, engine: str = "classic",
             base: RunRequest | None = None, sweeps: Sequence[Sweep] = (), backend: EmbeddingBackend | None = None,
             on_progress: EvalProgress | None = None, keep_images: bool = True, diffusion=None) -> Evaluation:
    """Run and score every identity × reference pair (see the module docstring).

    ``base`` carries the settings (its identity and reference are replaced); pairs whose reference is a
    photo of the same person (same folder name) are skipped.
    """
    from .pipeline import run

    backend = backend or load_embedding_backend()
    people_paths = find_people(identities)
    reference_paths = find_people(references)
    skipped: list[str] = []
    people = {name: _load(name, paths, backend, skipped) for name, paths in people_paths.items()}
    people = {name: photos for name, photos in people.items() if photos}
    refs = [photo for name, paths in reference_paths.items() for photo in _load(name, paths, backend, skipped)]
    if not people or not refs:
        raise FaceError("No usable identity or reference photos (each needs a detectable face).")
    base = (base or RunRequest(identity=("x",), reference="x")).replace(engine=engine)
    engine_method = engine
    variants = [(engine_method, base)] + [(f"{engine} {s.label(v)}", with_setting(base, s.field, v))
                                          for s in sweeps for v in s.values]
    methods = (REFERENCE, PASTE, *(name for name, _ in variants), CLIENT_PHOTO)
    if engine == "diffusion" and diffusion is None:
        from .pipeline import diffusion_engine

        diffusion = diffusion_engine()

    jobs = [(person, held, ref) for person, photos in people.items() for ref in refs if ref.person != person
            for held in (photos if len(photos) > 1 else [None])]
    total = len(jobs) * len(methods)
    rows: list[Row] = []
    raw_references: dict[Path, np.ndarray] = {}  # the references' own pixels (any bit depth), for "outside"
    images: dict[tuple[str, str, str], dict[str, np.ndarray]] = {}
    set_warnings = {person: [i.message for i in check_identity_set(
        [SetPhoto(p.name, p.face.landmarks, p.embedding, p.face_count) for p in photos])]
        for person, photos in people.items()}

    def add(row: Row, image: np.ndarray | None) -> None:
        rows.append(row)
        if keep_images and image is not None:
            images.setdefault((row.identity, row.held_out, row.reference), {})[row.method] = image
        if on_progress:
            on_progress(len(rows), total, row)

    for person, held, ref in jobs:
        photos = [p for p in people[person] if p is not held]
        sources = [classic.SourcePhoto(to_float(p.rgb), p.face, p.name, p.face_count) for p in photos]
        source_index = classic.choose_source(sources, ref.face)
        source = photos[source_index]
        pair_warnings = tuple(i.code for i in check_identity_set(
            [SetPhoto(p.name, p.face.landmarks, p.embedding, p.face_count) for p in photos], ref.face.landmarks))
        score = _Scorer(backend, ref, held, photos, source)
        common = dict(identity=person, held_out=held.name if held else "", reference=f"{ref.person}/{ref.name}",
                      source=source.name, warnings=pair_warnings)

        add(score.row(common, REFERENCE, ref.embedding, ref.rgb, None, None), ref.rgb)
        started = time.perf_counter()
        pasted, region = naive_paste(ref, sources, base.crop_size)
        add(score.row(common, PASTE, None, pasted, region, time.perf_counter() - started), pasted)
        for name, settings in variants:
            request = settings.replace(identity=tuple(str(p.path) for p in photos), reference=str(ref.path))
            started = time.perf_counter()
            result = run(request, diffusion=diffusion)
            seconds = time.perf_counter() - started - result.timings.get("score", 0.0)
            final = result.final.rgb8()
            if ref.path not in raw_references:
                raw_references[ref.path] = load_image(ref.path).pixels
            add(score.row(common | {"source": photos[result.source_index].name}, name, None, final, result.region,
                          seconds, raw=result.final.pixels, raw_reference=raw_references[ref.path]), final)
        add(score.row(common, CLIENT_PHOTO, source.embedding, None, None, None), source.rgb)

    summaries = tuple(summarise([r for r in rows if r.method == m], m) for m in methods)
    return Evaluation(rows=tuple(rows), summaries=summaries, methods=methods, engine_method=engine_method,
                      sweeps=tuple(sweeps), threshold=backend.threshold, backend=backend.name,
                      identities={k: [p.name for p in v] for k, v in people.items()},
                      references=[f"{r.person}/{r.name}" for r in refs], set_warnings=set_warnings, skipped=skipped,
                      images=images)


class _Scorer:
    """Scores outputs of one (identity, held-out, reference) job."""

    def __init__(self, backend: EmbeddingBackend, ref: Photo, held: Photo | None, photos: list[Photo],
                 source: Photo) -> None:
        self.backend, self.ref, self.held, self.photos = backend, ref, held, photos
        self.d_ref_held = distance(ref.embedding, held.embedding, backend.metric) if held else None
        self.d_own_held = distance(source.embedding, held.embedding, backend.metric) if held else None

    def row(self, common: dict, method: str, embedding: np.ndarray | None, output: np.ndarray | None,
            region: np.ndarray | None, seconds: float | None, raw: np.ndarray | None = None,
            raw_reference: np.ndarray | None = None) -> Row:
        metric = self.backend.metric
        face = None
        if embedding is None:
            face = output_face(output, self.ref.face)
            embedding = self.backend.embed(output, face)
        if self.held is not None:
            d_client = distance(embedding, self.held.embedding, metric)
        else:
            d_client = float(np.mean([distance(embedding, p.embedding, metric) for p in self.photos]))
        d_ref = distance(embedding, self.ref.embedding, metric)
        threshold = self.backend.threshold
        transfer = None
        if self.held is not None and self.d_ref_held - self.d_own_held >= MIN_TRANSFER_SPAN:
            transfer = (self.d_ref_held - d_client) / (self.d_ref_held - self.d_own_held)
        seam = outside = light = colour = None
        if output is not None and method not in (REFERENCE, CLIENT_PHOTO):
            seam = seam_step(output, self.ref.rgb)
            outside = changed_outside(raw if raw is not None else output,
                                      raw_reference if raw_reference is not None else self.ref.rgb, region)
            measured = light_agreement(output, self.ref.rgb, self.ref.face, face or self.ref.face)
            if measured is not None:
                light, colour = measured
        elif method == REFERENCE:
            light, colour = 1.0, 0.0
        return Row(method=method, d_client=d_client, d_ref=d_ref, verdict=verdict_of(d_client, d_ref, threshold),
                   success=d_client < threshold <= d_ref, transfer=transfer, seam=seam, outside=outside,
                   seconds=seconds, light=light, colour=colour, **common)


def naive_paste(reference: Photo, sources: list[classic.SourcePhoto], crop_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The baseline: the client photo the engine would choose, aligned as the engine aligns it, pasted into the
    reference through a hard-edged mask (where both faces are), with nothing else done.

    Returns the 8-bit output and the pasted region.
    """
    image = to_float(reference.rgb)
    crop = crop_face(image, reference.face.landmarks, crop_size)
    pair = classic.identity_pair(crop, crop.image, sources, reference.face, IdentityParams())
    hard = (classic.crop_mask(crop, reference.face, pair.b_landmarks, MaskParams(grow=0.0, feather=0.0)) > 0.5)
    roi = crop.full_roi()
    mask = (classic.mask_to_full(hard.astype(np.float32), crop, roi) > 0.5).astype(np.float32)
    x0, y0, x1, y1 = roi
    out = image.copy()
    out[y0:y1, x0:x1] = classic.paste_back(image[y0:y1, x0:x1], pair.b, crop, mask, roi)
    region = np.zeros(image.shape[:2], bool)
    region[y0:y1, x0:x1] = mask > 0
    return to_uint8(out), region


def summarise(rows: Sequence[Row], method: str) -> Summary:
    """The method's means over rows with a held-out photo (over every row when none has one)."""
    evidence = [r for r in rows if r.held_out] or list(rows)

    def mean(values: list[float | None]) -> float | None:
        values = [v for v in values if v is not None and not math.isnan(v)]
        return float(np.mean(values)) if values else None

    outside = [r.outside for r in evidence if r.outside is not None]
    verdicts: dict[str, int] = {}
    for r in evidence:
        verdicts[r.verdict] = verdicts.get(r.verdict, 0) + 1
    return Summary(method=method, n=len(evidence), d_client=mean([r.d_client for r in evidence]) or 0.0,
                   d_ref=mean([r.d_ref for r in evidence]) or 0.0,
                   success=float(np.mean([r.success for r in evidence])) if evidence else 0.0,
                   transfer=mean([r.transfer for r in evidence]), seam=mean([r.seam for r in evidence]),
                   outside=max(outside) if outside else None, seconds=mean([r.seconds for r in evidence]),
                   verdicts=verdicts, light=mean([r.light for r in evidence]),
                   colour=mean([r.colour for r in evidence]))


def _load(person: str, paths: list[Path], backend: EmbeddingBackend, skipped: list[str]) -> list[Photo]:
    photos = []
    for path in paths:
        try:
            rgb = load_image(path).rgb8()
        except ImageError as exc:
            skipped.append(f"{person}/{path.name}: {exc}")
            continue
        faces = detect_faces(rgb)
        if not faces:
            skipped.append(f"{person}/{path.name}: no face found")
            continue
        photos.append(Photo(person, path, rgb, faces[0], len(faces), backend.embed(rgb, faces[0])))
    return photos
