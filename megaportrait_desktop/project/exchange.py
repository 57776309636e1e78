"""Getting things out of and into a project: exported outputs, and whole projects as zip files.

Exports carry the run's parameters (PNG text chunk, XMP, and a one-line EXIF description) and the
reference's ICC profile. Zip import trusts nothing in the archive: every name is checked against
the project layout (no absolute paths, no ``..``, no links), sizes are counted while extracting
(zip bombs stop at the limit), and the project is assembled in a temporary folder that only
becomes the target once it opens and verifies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from xml.sax.saxutils import escape, unescape

from PIL import Image

from .. import __version__
from ..core.errors import ImageError
from ..core.imaging import SAVE_SUFFIXES, load_image, save_image
from .database import read_schema_version
from .errors import ProjectError
from .maintenance import verify
from .project import DB_NAME, Project

#: Whole-project zips: limits on what an archive may unpack to.
MAX_UNPACKED_BYTES = 64 * 1024**3
MAX_MEMBERS = 500_000
MAX_RATIO = 200  # a member may not unpack to more than 200× its compressed size (PNG/JPEG barely compress)

_MEMBER = re.compile(r"^(project\.db|objects/[0-9a-f]{2}/[0-9a-f]{64}\.(png|jpg|jpeg|tif|tiff|webp|safetensors|img))$")
XMP_NAMESPACE = "urn:megaportrait:ns:1.0"


# ------------------------------------------------------------------------------------------ outputs


def provenance(project: Project, output_id: int) -> dict:
    """Everything about how an output was made: the request, engine, models with hashes, score, time."""
    out = project.output(output_id)
    return {"app": f"MegaPortrait Desktop {__version__}", "output_id": out.id, "engine": out.engine,
            "request": out.request, "models": out.models, "identity": out.identity_name,
            "reference": out.reference_name, "identity_score": out.identity_score,
            "identity_report": out.identity_report, "created": out.created}


def export_output(project: Project, output_id: int, dest: str | Path, quality: int = 95) -> Path:
    """Export an output as PNG, JPEG or 16-bit TIFF (by ``dest``'s suffix) with its parameters embedded."""
    dest = Path(dest)
    if dest.suffix.lower() not in SAVE_SUFFIXES:
        raise ProjectError(f"{dest.name}: export as .png, .jpg or .tif.")
    out = project.output(output_id)
    try:
        picture = load_image(project.path_of(out.final_path))
    except ImageError as exc:
        raise ProjectError(f"The output's image cannot be read ({exc}); run Verify/Repair on the project.") from None
    icc = picture.icc_profile or _reference_icc(project, out.reference_id)
    info = json.dumps(provenance(project, output_id), sort_keys=True)
    exif = Image.Exif()
    if picture.exif:
        exif.load(picture.exif)
    exif[0x010E] = f"MegaPortrait output {out.id} ({out.engine} engine)"  # ImageDescription
    exif[0x0131] = f"MegaPortrait Desktop {__version__}"  # Software
    try:
        return save_image(dest, picture, icc_profile=icc, exif=exif.tobytes(), quality=quality,
                          text={"megaportrait:provenance": info}, xmp=_xmp(info))
    except ImageError as exc:
        raise ProjectError(str(exc)) from None


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
    if reference_id is None:
        return None
    try:
        return load_image(project.path_of(project.reference(reference_id).path)).icc_profile
    except (ImageError, ProjectError):
        return None


# ------------------------------------------------------------------------------------ project zips


def export_project(project: Project, dest: str | Path) -> Path:
    """Write the whole project (a consistent database snapshot and every stored file) to a zip."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mp-export-") as tmp:
        snapshot = Path(tmp) / DB_NAME
        target = sqlite3.connect(snapshot)
        try:
            project.db.connection.backup(target)  # consistent even while another thread writes
        finally:
            target.close()
        part = dest.with_name(f".{dest.name}.part")
        try:
            with zipfile.ZipFile(part, "w") as zf:
                zf.write(snapshot, DB_NAME, compress_type=zipfile.ZIP_DEFLATED)
                for row in project.db.query("SELECT path FROM files ORDER BY path"):
                    source = project.path_of(row["path"])
                    if source.is_file():
                        zf.write(source, row["path"], compress_type=zipfile.ZIP_STORED)
            os.replace(part, dest)
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise ProjectError(f"Could not write {dest.name} ({exc.strerror or exc}).") from None
    return dest


def import_project(archive: str | Path, target: str | Path, max_unpacked_bytes: int = MAX_UNPACKED_BYTES) -> Project:
    """Unpack a project zip into ``target`` (a new folder) and open it.

    Raises
    ------
    ProjectError
        For anything unsafe or broken in the archive; ``target`` is then left as it was.
    """
    archive, target = Path(archive), Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectError(f"{target} already exists and is not empty; choose a new folder to import into.")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProjectError(f"{archive.name} is not a readable zip file ({exc}).") from None
    with zf:
        members = _checked_members(zf, archive.name, max_unpacked_bytes)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.importing-", dir=target.parent))
        try:
            budget = max_unpacked_bytes
            for info in members:
                budget = _extract(zf, info, staging, budget, archive.name)
            if not (staging / DB_NAME).is_file():
                raise ProjectError(f"{archive.name} holds no {DB_NAME}; it is not a MegaPortrait project.")
            read_schema_version(staging / DB_NAME)
            project = Project.open(staging)
            try:
                report = verify(project)
            finally:
                project.close()
            if report.missing_files:
                raise ProjectError(f"{archive.name} is incomplete: {len(report.missing_files)} file(s) are missing.")
            for leftover in ("-wal", "-shm"):
                (staging / f"{DB_NAME}{leftover}").unlink(missing_ok=True)
            if target.exists():
                target.rmdir()
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return Project.open(target)


def _checked_members(zf: zipfile.ZipFile, name: str, max_unpacked_bytes: int) -> list[zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ProjectError(f"{name} has {len(infos)} entries, more than a project can hold; refusing it.")
    total = 0
    members = []
    for info in infos:
        if info.is_dir():
            continue
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ProjectError(f"{name} contains a link ({info.filename}); refusing it.")
        if not _MEMBER.match(info.filename):
            raise ProjectError(f"{name} contains '{info.filename}', which is not part of a project "
                               "(absolute paths, '..' and unknown files are refused).")
        if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 1 << 20:
            raise ProjectError(f"{name}: '{info.filename}' expands {info.file_size // max(info.compress_size, 1)}× "
                               "(a zip bomb?); refusing it.")
        total += info.file_size
        members.append(info)
    if total > max_unpacked_bytes:
        raise ProjectError(f"{name} would unpack to {total / 1e9:.1f} GB, above the limit of "
                           f"{max_unpacked_bytes / 1e9:.1f} GB; refusing it.")
    free = shutil.disk_usage(Path(tempfile.gettempdir())).free
    if total > free:
        raise ProjectError(f"{name} needs {total / 1e9:.1f} GB but the disk has {free / 1e9:.1f} GB free.")
    return members


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, budget: int, name: str) -> int:
    """Copy one member, counting real bytes (headers can lie); returns the budget left."""
    dest = root / info.filename
    if root.resolve() not in dest.resolve().parents:
        raise ProjectError(f"{name}: '{info.filename}' would land outside the project; refusing it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        with zf.open(info) as src, open(dest, "wb") as out:
            while block := src.read(1 << 20):
                written += len(block)
                if written > info.file_size or written > budget:
                    raise ProjectError(f"{name}: '{info.filename}' unpacks to more than it declares; refusing it.")
                out.write(block)
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ProjectError(f"{name} is damaged ({exc}).") from None
    return budget - written
