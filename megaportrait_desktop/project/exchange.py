"""Getting things out of and into a project: exported outputs, and whole projects as zip files.

Exports carry the run's parameters (PNG text chunk, XMP, and a one-line EXIF description) and the
reference's ICC profile. Zip import trusts nothing in the archive: every name is checked against
the project layout (no absolute paths, no ``..``, no links, no encryption or unknown compression),
sizes are counted while extracting (zip bombs stop at the limit), and the project is assembled in a
folder beside the target that only becomes the target once its database and every file row pass a
deep check (see :func:`import_project`).
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
import sqlite3
import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from xml.sax.saxutils import escape, unescape

from PIL import Image

from .. import __version__
from ..core.errors import ImageError
from ..core.imaging import SAVE_SUFFIXES, Picture, load_image, save_image
from . import leftovers
from .errors import ProjectError, disk_problem, sqlite_error, storage_error
from .files import check_stored_path
from .integrity import check_database
from .maintenance import verify
from .project import DB_NAME, Project

#: Whole-project zips: limits on what an archive may unpack to.
MAX_UNPACKED_BYTES = 64 * 1024**3
MAX_MEMBERS = 500_000
MAX_RATIO = 200  # a member may not unpack to more than 200× its compressed size (PNG/JPEG barely compress)

#: Free space kept on the target disk beyond the unpacked project.
FREE_MARGIN = 64 << 20
_COMPRESSIONS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
XMP_NAMESPACE = "urn:megaportrait:ns:1.0"


# ------------------------------------------------------------------------------------------ outputs


def provenance(project: Project, output_id: int) -> dict:
    """Everything about how an output was made: the request, engine, models with hashes, score, time."""
    out = project.output(output_id)
    return {"app": f"MegaPortrait Desktop {__version__}", "output_id": out.id, "engine": out.engine,
            "request": out.request, "models": out.models, "identity": out.identity_name,
            "reference": out.reference_name, "identity_score": out.identity_score,
            "identity_report": out.identity_report, "created": out.created}


def export_output(project: Project, output_id: int, dest: str | Path, quality: int = 95,
                  on_progress: Callable[[float, str], None] | None = None, *, include_provenance: bool = True,
                  keep_exif: bool = True, prepare: Callable[[Picture], Picture] | None = None) -> Path:
    """Export an output as PNG, JPEG or 16-bit TIFF (by ``dest``'s suffix) with its parameters embedded.

    ``on_progress(fraction, what)`` hears each step (reading, encoding a band of rows at a time, writing);
    it may raise (e.g. ``Cancelled``) to stop the export, and then nothing is written.
    ``include_provenance=False`` leaves out everything MegaPortrait adds (the PNG text chunk and XMP with the
    client's name, the prompt and the project's paths; the EXIF description and software), for a file
    that goes to a client or a website; the project keeps the provenance either way. ``keep_exif=False``
    drops the reference's camera EXIF too. ``prepare`` changes the picture before it is encoded (resize,
    sharpen, sRGB: see :mod:`.export_presets`); it gets the picture with its ICC profile resolved (the
    reference's, when the output carries none) and may replace the profile.
    """
    dest = Path(dest)
    if dest.suffix.lower() not in SAVE_SUFFIXES:
        raise ProjectError(f"{dest.name}: export as .png, .jpg or .tif.")
    report = on_progress or (lambda fraction, what: None)
    out = project.output(output_id)
    report(0.0, f"Reading output #{out.id}")
    try:
        picture = load_image(project.path_of(out.final_path))
    except ImageError as exc:
        raise ProjectError(f"The output's image cannot be read ({exc}); run Verify/Repair on the project.") from None
    encoding = f"Writing {dest.name}"
    report(0.3, encoding)
    icc = picture.icc_profile or _reference_icc(project, out.reference_id)
    if prepare is not None:
        try:
            picture = prepare(replace(picture, icc_profile=icc))
        except ImageError as exc:
            raise ProjectError(str(exc)) from None
        icc = picture.icc_profile
    exif = Image.Exif()
    if picture.exif and keep_exif:
        exif.load(picture.exif)
    text = xmp = None
    if include_provenance:
        info = json.dumps(provenance(project, output_id), sort_keys=True)
        exif[0x010E] = f"MegaPortrait output {out.id} ({out.engine} engine)"  # ImageDescription
        exif[0x0131] = f"MegaPortrait Desktop {__version__}"  # Software
        text, xmp = {"megaportrait:provenance": info}, _xmp(info)
    try:
        saved = save_image(dest, picture, icc_profile=icc, exif=exif.tobytes() if len(exif) else b"",
                           quality=quality, text=text, xmp=xmp,
                           on_band=lambda done, rows: report(0.3 + 0.65 * done / rows, encoding))
    except ImageError as exc:
        raise ProjectError(str(exc)) from None
    report(1.0, f"Exported {saved.name}")
    return saved


def read_embedded_provenance(path: str | Path) -> dict:
    """The provenance an export carries (PNG text chunk or XMP), as a dict."""
    im = Image.open(path)
    text = getattr(im, "text", {}) or {}
    if "megaportrait:provenance" in text:
        return json.loads(text["megaportrait:provenance"])
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    if xmp is None and im.format == "TIFF":
        xmp = im.tag_v2.get(700)
    if xmp is None:
        raise ProjectError(f"{Path(path).name} carries no MegaPortrait provenance.")
    if isinstance(xmp, bytes):
        xmp = xmp.decode("utf-8")
    match = re.search(r"<megaportrait:Provenance>(.*?)</megaportrait:Provenance>", xmp, re.S)
    if not match:
        raise ProjectError(f"{Path(path).name} carries no MegaPortrait provenance.")
    return json.loads(unescape(match.group(1)))


def _xmp(info: str) -> bytes:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:megaportrait="{XMP_NAMESPACE}">'
        f"<xmp:CreatorTool>MegaPortrait Desktop {escape(__version__)}</xmp:CreatorTool>"
        f"<megaportrait:Provenance>{escape(info)}</megaportrait:Provenance>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode()


def _reference_icc(project: Project, reference_id: int | None) -> bytes | None:
    """The reference's ICC profile, read from its header (not by decoding a 24-megapixel file for it)."""
    if reference_id is None:
        return None
    try:
        with Image.open(project.path_of(project.reference(reference_id).path)) as im:
            return im.info.get("icc_profile") or None
    except (OSError, ValueError, SyntaxError, ProjectError):
        return None


# ------------------------------------------------------------------------------------ project zips


def export_project(project: Project, dest: str | Path) -> Path:
    """Write the whole project (a consistent database snapshot and every stored file) to a zip.

    The snapshot of the client's database is written beside the project (beside the zip when the
    project is on read-only media), never to a shared temporary folder, and removed afterwards; a
    killed export's snapshot is removed by the next export or by ``verify --repair``.
    """
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error(exc, f"the folder for {dest.name}") from None
    unsafe = [r["path"] for r in project.db.query("SELECT sha256, path FROM files")
              if not project.files.is_safe(r["path"], r["sha256"])]
    if unsafe:
        raise ProjectError(f"The project names {len(unsafe)} file(s) outside its folder (e.g. "
                           f"'{str(unsafe[0])[:80]}'); they are never exported. Run 'project verify --repair' first.")
    leftovers.sweep_legacy_exports()
    # Beside the project whenever its folder can be written (even when the project is open read-only here).
    folder = project.root if disk_problem(project.root) is None else dest.parent
    for place in {folder, dest.parent}:
        leftovers.sweep(place)  # what killed exports left there
    snapshot = leftovers.export_snapshot_path(folder)
    part = leftovers.partial_zip_path(dest)
    try:
        target = sqlite3.connect(snapshot)
        try:
            project.db.connection.backup(target)  # consistent even while another thread writes
            # The files the snapshot names, so the zip holds exactly what its database refers to.
            rows = target.execute("SELECT sha256, path FROM files ORDER BY path").fetchall()
        finally:
            target.close()
        with zipfile.ZipFile(part, "w") as zf:
            zf.write(snapshot, DB_NAME, compress_type=zipfile.ZIP_DEFLATED)
            for sha, path in rows:
                source = project.files.absolute(path, sha)  # checked: inside objects/, no link on the way
                if source.is_file():
                    zf.write(source, path, compress_type=zipfile.ZIP_STORED)
        os.replace(part, dest)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise storage_error(exc, dest.name) from None
    except sqlite3.Error as exc:
        part.unlink(missing_ok=True)
        raise sqlite_error(exc, snapshot) from None
    finally:
        for suffix in ("", "-journal"):
            Path(f"{snapshot}{suffix}").unlink(missing_ok=True)
    return dest


def import_project(archive: str | Path, target: str | Path, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> Project:
    """Unpack a project zip into ``target`` (a new folder) and open it.

    Nothing in the archive is trusted: member names, flags and sizes are checked before unpacking, the
    database is checked (integrity, schema version, every table, no triggers), and every file row must
    name one of the zip's own stored files under its true hash (each file is re-hashed). Only then
    does the unpacked folder become ``target``.

    Raises
    ------
    ProjectError
        For anything unsafe or broken in the archive; ``target`` is then left as it was.
    """
    archive, target = Path(archive), Path(target)
    try:
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise ProjectError(f"{target} already exists and is not empty; choose a new folder to import into.")
    except OSError as exc:
        raise storage_error(exc, f"the folder {target}") from None
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ProjectError(f"{archive.name} is not a readable zip file ({exc}).") from None
    with zf:
        members = _checked_members(zf, archive.name, max_unpacked_bytes)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise storage_error(exc, f"the folder {target.parent}") from None
        _check_free_space(target.parent, sum(info.file_size for info in members), archive.name)
        leftovers.sweep(target.parent)  # what killed imports left here
        staging = leftovers.import_staging_path(target)
        try:
            staging.mkdir()
        except OSError as exc:
            raise storage_error(exc, f"the folder {target.parent}") from None
        try:
            budget = max_unpacked_bytes
            for info in members:
                budget = _extract(zf, info, staging, budget, archive.name)
            if not (staging / DB_NAME).is_file():
                raise ProjectError(f"{archive.name} holds no {DB_NAME}; it is not a MegaPortrait project.")
            check_database(staging / DB_NAME, archive.name)
            _check_contents(staging, archive.name)
            for leftover in ("-wal", "-shm", "-journal"):
                (staging / f"{DB_NAME}{leftover}").unlink(missing_ok=True)
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise storage_error(exc, f"the folder {target.parent}") from None
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Project.open(target)


def _check_contents(staging: Path, name: str) -> None:
    """Every row names one of the archive's own files, present and matching its hash; strays are dropped."""
    project = Project.open(staging, read_only=False)
    try:
        report = verify(project, deep=True)
        if report.integrity != "ok":
            raise ProjectError(f"{name}: the project database is damaged ({report.integrity}); it was refused.")
        if report.unsafe_rows:
            raise ProjectError(f"{name} names {len(report.unsafe_rows)} file(s) outside the project (e.g. "
                               f"'{report.unsafe_rows[0][:80]}'), which could read or delete files on this "
                               "computer; it was refused.")
        if report.missing_files:
            raise ProjectError(f"{name} is incomplete: {len(report.missing_files)} file(s) are missing.")
        if report.damaged_files:
            raise ProjectError(f"{name} is damaged: {len(report.damaged_files)} file(s) do not match their hash "
                               f"(e.g. {report.damaged_files[0]}); it was refused.")
        for stray in (*report.orphan_files, *report.recent_files):  # files no row names: not part of the project
            project.files.remove_stray(stray)
    finally:
        project.close()


def _checked_members(zf: zipfile.ZipFile, name: str, max_unpacked_bytes: int) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ProjectError(f"{name} has {len(infos)} entries, more than a project can hold; refusing it.")
    total = 0
    members = []
    seen: set[str] = set()
    for info in infos:
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ProjectError(f"{name} contains a link ({info.filename}); refusing it.")
        if not _is_member(info.filename):
            raise ProjectError(f"{name} contains '{info.filename[:120]}', which is not part of a project "
                               "(absolute paths, '..' and unknown files are refused).")
        if info.filename in seen:
            raise ProjectError(f"{name} holds '{info.filename}' twice; refusing it.")
        seen.add(info.filename)
        if info.flag_bits & 0x1:
            raise ProjectError(f"{name} is encrypted ('{info.filename}'); MegaPortrait cannot unpack password-"
                               "protected zips. Export the project again without a password.")
        if info.compress_type not in _COMPRESSIONS:
            raise ProjectError(f"{name}: '{info.filename}' uses a compression method ({info.compress_type}) this app "
                               "cannot unpack; export the project again with MegaPortrait (or as a plain zip).")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
            raise ProjectError(f"{name}: '{info.filename}' expands {info.file_size // max(info.compress_size, 1)}× "
                               "(a zip bomb?); refusing it.")
        total += info.file_size
        members.append(info)
    if total > max_unpacked_bytes:
        raise ProjectError(f"{name} would unpack to {total / 1e9:.1f} GB, above the limit of "
                           f"{max_unpacked_bytes / 1e9:.1f} GB; refusing it.")
    return members


def _is_member(filename: str) -> bool:
    if filename == DB_NAME:
        return True
    try:
        check_stored_path(filename)
    except ProjectError:
        return False
    return True


def _check_free_space(folder: Path, needed: int, name: str) -> None:
    """The disk the project is unpacked onto (not the temp folder's) must hold it, with a margin."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise storage_error(exc, f"the folder {folder}") from None
    if needed + FREE_MARGIN > free:
        raise ProjectError(f"{name} needs {_gb(needed)} but the disk holding {folder} has {_gb(free)} free; free "
                           "some space or import it onto another disk.")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e7 else f"{n / 1e6:.1f} MB"


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, budget: int, name: str) -> int:
    """Copy one member, counting real bytes (headers can lie); returns the budget left."""
    dest = root / info.filename
    if root.resolve() not in dest.resolve().parents:
        raise ProjectError(f"{name}: '{info.filename}' would land outside the project; refusing it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(dest, "wb") as out:
        try:
            src = zf.open(info)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, OSError, EOFError) as exc:
            raise ProjectError(f"{name}: '{info.filename}' cannot be unpacked ({exc}); it was refused.") from None
        with src:
            while True:
                try:
                    block = src.read(1 << 20)
                except (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError,
                        NotImplementedError, RuntimeError) as exc:
                    raise ProjectError(f"{name} is damaged ({exc}).") from None
                if not block:
                    break
                written += len(block)
                if written > info.file_size or written > budget:
                    raise ProjectError(f"{name}: '{info.filename}' unpacks to more than it declares; refusing it.")
                out.write(block)
    return budget - written
