"""Offline model packs: a folder or zip with ``manifest.json``, installed with every hash checked.

A studio prepares one machine, builds a pack from what it has installed (:func:`pack_builder.build_pack`) and
carries it on a USB drive to offline machines (:func:`install_pack`). The format (version 1)::

    manifest.json
    base/<name>/...                  a diffusers folder, or base/<name>.safetensors
    face_controlnet/<name>/...       likewise for each ControlNet role
    insightface/models/buffalo_l/... the insightface pack (det_10g.onnx, w600k_r50.onnx, ...)

    {"format": "megaportrait-model-pack", "version": 1, "created": "...",
     "models": [{"role": "base", "name": "sd15", "kind": "folder" | "single_file",
                 "path": "base/sd15", "config": null, "source": "stable-diffusion-v1-5/...",
                 "licence": {"id": "creativeml-openrail-m", "name": "...", "url": "...",
                             "requires_acceptance": false},
                 "files": [{"path": "base/sd15/unet/diffusion_pytorch_model.safetensors",
                            "size": 3438167536, "sha256": "..."}]}]}

Paths are POSIX, relative to the pack root, and a model lands at the same path in the models folder.

Installing refuses, with the reason and before touching the models folder: an unknown format or
version, a path that could escape the models folder (absolute, ``..``, a link), a pickle file or any
file type that is not plain data, a ``.safetensors`` file that is not one, a missing file, and a size
or SHA-256 mismatch. Files are copied (and hashed while copied) into a staging folder inside the models
folder, and moved into place only when every one checked out; a refused or cancelled install removes
the staging folder, so nothing half-installed is left behind. A file already installed with the same
hash is not copied again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from .. import installed
from ..diffusion.models import PICKLE_SUFFIXES
from ..errors import MegaPortraitError, os_error_message
from ..licences import Licence
from ..model_settings import ROLES, ModelSpec, load_settings, save_settings
from ..paths import models_dir as default_models_dir
from ..progress import Reporter
from . import safetensors_header

FORMAT = "megaportrait-model-pack"
VERSION = 1
MANIFEST = "manifest.json"
#: Roles a pack can carry beyond the diffusion roles, and where each must be installed.
FIXED_PATHS = {"insightface": "insightface/models/buffalo_l"}
PACK_ROLES = (*ROLES, "insightface")
#: Plain data files a pack may hold; anything else (executables, pickles, archives) is refused.
ALLOWED_SUFFIXES = {".safetensors", ".json", ".txt", ".onnx", ".md", ".yaml", ".model"}
_CHUNK = 1 << 20
_MAX_HEADER = safetensors_header.MAX_HEADER
#: No model file is near a terabyte; a larger size in a manifest is not a byte count.
MAX_FILE_SIZE = 1 << 40
#: A staging folder this old belongs to an install that was killed.
STALE_STAGING_S = 24 * 3600
#: A model is a diffusers ``folder`` or a ``single_file``; a ``config`` entry holds the diffusers config
#: files (no weights) that a single-file model of the pack names as its ``config``.
KINDS = ("folder", "single_file", "config")


class PackError(MegaPortraitError):
    """A model pack was refused; the message says why. Nothing was installed."""


@dataclass(frozen=True)
class PackFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class PackModel:
    """One model of a pack (see the module docstring for the fields)."""

    role: str
    name: str
    kind: str
    path: str
    files: tuple[PackFile, ...]
    licence: Licence
    source: str = ""
    config: str | None = None


@dataclass(frozen=True)
class Manifest:
    models: tuple[PackModel, ...]
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "created": self.created, "models": [
            {"role": m.role, "name": m.name, "kind": m.kind, "path": m.path, "config": m.config, "source": m.source,
             "licence": m.licence.to_json(),
             "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in m.files]}
            for m in self.models]}


@dataclass
class InstallReport:
    """What :func:`install_pack` did: files ``copied`` and ``skipped`` (already installed, same hash)."""

    models: list[PackModel] = field(default_factory=list)
    copied: int = 0
    skipped: int = 0
    roles_set: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ reading


class _Source:
    """A pack's files, from a folder or a zip, by their POSIX path inside the pack."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.zip: zipfile.ZipFile | None = None
        if path.is_file():
            try:
                self.zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise PackError(f"{path.name} is not a model pack (not a folder or a readable zip: {exc}).") from None
            self.prefix = self._zip_prefix()
        elif not path.is_dir():
            raise PackError(f"No model pack at {path}.")

    def _zip_prefix(self) -> str:
        # A zip made by compressing the pack folder has everything under one top folder.
        names = self.zip.namelist()
        if MANIFEST in names:
            return ""
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1 and f"{next(iter(tops))}/{MANIFEST}" in names:
            return next(iter(tops)) + "/"
        return ""

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()

    def exists(self, name: str) -> bool:
        if self.zip is not None:
            try:
                self.zip.getinfo(self.prefix + name)
                return True
            except KeyError:
                return False
        return (self.path / name).is_file() or (self.path / name).is_symlink()

    def is_link(self, name: str) -> bool:
        if self.zip is not None:
            mode = self.zip.getinfo(self.prefix + name).external_attr >> 16
            return stat.S_ISLNK(mode)
        # A link anywhere on the way (a linked folder) could point outside the pack.
        current = self.path
        for part in PurePosixPath(name).parts:
            current = current / part
            if current.is_symlink():
                return True
        return False

    def open(self, name: str) -> IO[bytes]:
        if self.zip is not None:
            try:
                return self.zip.open(self.prefix + name)
            except (zipfile.BadZipFile, NotImplementedError, RuntimeError, ValueError, EOFError) as exc:
                # RuntimeError: an encrypted member; NotImplementedError: an unknown compression method.
                raise PackError(f"The pack's file {name} cannot be unpacked ({exc}); the pack is refused.") from None
        return (self.path / name).open("rb")

    def names(self) -> list[str]:
        if self.zip is not None:
            return [n[len(self.prefix):] for n in self.zip.namelist() if not n.endswith("/")]
        return [p.relative_to(self.path).as_posix() for p in self.path.rglob("*") if p.is_file()]


def read_manifest(pack: str | Path) -> Manifest:
    """The checked manifest of a pack folder or zip (no file is hashed here: see :func:`verify_pack`).

    Raises
    ------
    PackError
        For a missing or malformed manifest, an unknown format or version, an unsafe path or file type.
    """
    source = _Source(Path(pack))
    try:
        return _read_manifest(source)
    finally:
        source.close()


def _read_manifest(source: _Source) -> Manifest:
    if not source.exists(MANIFEST):
        raise PackError(f"{source.path.name} is not a model pack: it has no {MANIFEST}.")
    try:
        with source.open(MANIFEST) as f:
            data = json.loads(f.read(1 << 22).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise PackError(f"The pack's {MANIFEST} is not valid JSON ({exc}).") from None
    except RecursionError:
        raise PackError(f"The pack's {MANIFEST} is nested too deeply to be a manifest; the pack is refused.") from None
    except (OSError, zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, zlib.error) as exc:
        raise PackError(f"The pack's {MANIFEST} cannot be read ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PackError(f"The pack's {MANIFEST} is not a MegaPortrait model pack manifest (format "
                        f"{data.get('format') if isinstance(data, dict) else None!r}).")
    if data.get("version") != VERSION or type(data.get("version")) is not int:
        raise PackError(f"The pack's manifest version {data.get('version')!r} is unknown to this version of the app "
                        f"(it reads version {VERSION}); update the app or rebuild the pack.")
    models = []
    seen_paths: set[str] = set()
    try:
        if not isinstance(data.get("models"), list):
            raise TypeError("'models' is not a list")
        for entry in data["models"]:
            model = _read_model(entry)
            for f in model.files:
                if f.path in seen_paths:
                    raise PackError(f"The pack lists {f.path} twice.")
                seen_paths.add(f.path)
            models.append(model)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise PackError(f"The pack's {MANIFEST} is malformed ({type(exc).__name__}: {exc}).") from None
    # One file may not be another's folder: installing both would put a file where a folder must be.
    for path in seen_paths:
        parent = next((str(p) for p in PurePosixPath(path).parents if str(p) in seen_paths), None)
        if parent is not None:
            raise PackError(f"The pack lists {parent} as a file and as the folder of {path}; the pack is refused.")
    if not models:
        raise PackError("The pack holds no models.")
    # A pickle the manifest does not list is never installed, but a pack carrying one was not made by
    # this app or was tampered with: refuse it rather than guess.
    stray = next((n for n in source.names() if PurePosixPath(n).suffix.lower() in PICKLE_SUFFIXES), None)
    if stray is not None:
        raise PackError(f"The pack holds a pickle file, {stray}: loading one can run code hidden in it, so the "
                        "pack is refused. Rebuild it with .safetensors weights.")
    return Manifest(tuple(models), str(data.get("created", "")))


def _read_model(entry: dict[str, Any]) -> PackModel:
    if not isinstance(entry, dict):
        raise TypeError("a model entry is not an object")
    role = entry["role"]
    if role not in PACK_ROLES:
        raise PackError(f"The pack has a model for an unknown role {role!r} (roles: {', '.join(PACK_ROLES)}).")
    path = _safe_path(entry["path"])
    if role in FIXED_PATHS and path != FIXED_PATHS[role]:
        raise PackError(f"The pack's {role} model must be at {FIXED_PATHS[role]}, not {path}.")
    kind = entry.get("kind", "folder")
    if kind not in KINDS:
        raise PackError(f"The pack's {role} model has an unknown kind {kind!r}.")
    if not isinstance(entry["files"], list):
        raise TypeError(f"the {role} model's 'files' is not a list")
    files = []
    for f in entry["files"]:
        if not isinstance(f, dict):
            raise TypeError(f"a file entry of the {role} model is not an object")
        name = _safe_path(f["path"])
        if name != path and not name.startswith(path + "/"):
            raise PackError(f"The pack's file {name} lies outside its model's folder {path}.")
        suffix = PurePosixPath(name).suffix.lower()
        if suffix in PICKLE_SUFFIXES:
            raise PackError(f"The pack holds a pickle file, {name}: loading one can run code hidden in it, so the "
                            "pack is refused. Rebuild it with .safetensors weights.")
        if suffix not in ALLOWED_SUFFIXES:
            raise PackError(f"The pack holds {name}, a file type a model pack may not carry "
                            f"(allowed: {', '.join(sorted(ALLOWED_SUFFIXES))}).")
        sha = str(f["sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise PackError(f"The pack's hash of {name} is not a SHA-256.")
        size = f["size"]
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_SIZE:
            raise PackError(f"The pack's size of {name} ({str(size)[:40]}) is not a byte count; the pack is refused.")
        files.append(PackFile(name, size, sha))
    if not files:
        raise PackError(f"The pack's {role} model lists no files.")
    if kind == "single_file" and (len(files) != 1 or files[0].path != path):
        raise PackError(f"The pack's single-file {role} model must list exactly its file {path}.")
    config = _safe_path(entry["config"]) if entry.get("config") else None
    licence = entry.get("licence")
    if not (licence is None or isinstance(licence, str) or (
            isinstance(licence, dict) and all(isinstance(k, str) and isinstance(v, str | bool | None)
                                              for k, v in licence.items()))):
        raise PackError(f"The pack's {role} licence is neither a licence id nor a licence object; the pack is "
                        "refused.")
    return PackModel(role=role, name=str(entry.get("name") or PurePosixPath(path).name), kind=kind, path=path,
                     files=tuple(files), licence=Licence.from_json(licence),
                     source=str(entry.get("source", "")), config=config)


def _safe_path(value: Any) -> str:
    """A relative POSIX path that stays inside its root, or :class:`PackError`."""
    if not isinstance(value, str):
        raise PackError(f"The pack has a path that is not text ({str(value)[:40]}); the pack is refused.")
    text = value
    pure = PurePosixPath(text)
    if (not pure.parts or "\\" in text or pure.is_absolute() or ":" in text or ".." in pure.parts
            or any(part.startswith(".") for part in pure.parts) or any(ord(c) < 32 for c in text)):
        raise PackError(f"The pack's path {text!r} could escape the models folder (absolute, '..', hidden or a "
                        "drive); the pack is refused.")
    return pure.as_posix()


# ------------------------------------------------------------------------------------------ verifying


def verify_pack(pack: str | Path, reporter: Reporter | None = None) -> Manifest:
    """Check every file of a pack against its manifest (size and SHA-256) without installing anything.

    Raises
    ------
    PackError
        At the first refused file, saying which and why.
    """
    source = _Source(Path(pack))
    try:
        manifest = _read_manifest(source)
        files = [f for m in manifest.models for f in m.files]
        total = sum(f.size for f in files)
        done = 0
        for f in files:
            _check_present(source, f)
            with source.open(f.path) as stream:
                _copy_checked(stream, None, f, reporter, done, total)
            done += f.size
        return manifest
    finally:
        source.close()


def _check_present(source: _Source, f: PackFile) -> None:
    if not source.exists(f.path):
        raise PackError(f"The pack's file {f.path} is missing.")
    if source.is_link(f.path):
        raise PackError(f"The pack's file {f.path} is a link, which could point outside the pack; refused.")


def _read(stream: IO[bytes], name: str) -> bytes:
    try:
        return stream.read(_CHUNK)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, ValueError) as exc:
        raise PackError(f"The pack's file {name} is damaged ({exc}); the pack is refused.") from None


def _copy_checked(stream: IO[bytes], out: IO[bytes] | None, f: PackFile, reporter: Reporter | None,
                  done: int, total: int) -> None:
    digest = hashlib.sha256()
    size = 0
    weights = f.path.lower().endswith(".safetensors")
    head = bytearray()  # a .safetensors file's length prefix and whole header, checked once it is all here
    while chunk := _read(stream, f.path):
        if weights and len(head) < 8 + min(safetensors_header.header_length(bytes(head[:8])) or 0, _MAX_HEADER):
            head += chunk[:8 + _MAX_HEADER - len(head)]
        size += len(chunk)
        if size > f.size:
            raise PackError(f"The pack's file {f.path} is larger than its manifest says; refused.")
        digest.update(chunk)
        if out is not None:
            out.write(chunk)
        if reporter is not None:
            reporter("install", done + size, total, f.path)
    if size != f.size:
        raise PackError(f"The pack's file {f.path} has {size} bytes, its manifest says {f.size}; refused.")
    if digest.hexdigest() != f.sha256:
        raise PackError(f"The pack's file {f.path} does not match its SHA-256 (damaged or changed); refused.")
    if weights and (why := safetensors_header.problem(bytes(head), size)):
        raise PackError(f"The pack's file {f.path} is not a whole safetensors file ({why}); refused.")


# ------------------------------------------------------------------------------------------ installing


def install_pack(pack: str | Path, models_dir: Path | None = None, reporter: Reporter | None = None,
                 use: bool = True) -> InstallReport:
    """Install a pack folder or zip into the models folder, every file checked; all or nothing.

    Parameters
    ----------
    pack:
        The pack folder (e.g. on a USB drive) or zip.
    models_dir:
        Where models live (default: the app's models folder).
    reporter:
        Progress (stage ``"install"``, bytes) and cancellation.
    use:
        Set each installed diffusion role in ``models.json`` when that role has no working model yet.

    Raises
    ------
    PackError
        When the pack is refused; the models folder is then as it was.
    Cancelled
        When cancelled; likewise nothing is left behind.
    """
    root = models_dir or default_models_dir()
    source = _Source(Path(pack))
    try:
        manifest = _read_manifest(source)
        for model in manifest.models:
            for f in model.files:
                _check_present(source, f)
        try:
            root.mkdir(parents=True, exist_ok=True)
            for model in manifest.models:
                for f in model.files:
                    _check_target(root, f.path)
            record = installed.load_registry(root)
            to_copy = [f for m in manifest.models for f in m.files if not _already_installed(root, f)]
            _check_free_space(root, sum(f.size for f in to_copy))
            _remove_stale_staging(root)
            staging = root / f".incoming-{uuid.uuid4().hex}"
            try:
                total, done = sum(f.size for f in to_copy), 0
                for f in to_copy:
                    target = staging / f.path
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with source.open(f.path) as stream, target.open("wb") as out:
                        _copy_checked(stream, out, f, reporter, done, total)
                    done += f.size
                for model in manifest.models:
                    record[model.path] = installed.InstalledModel(
                        role=model.role, name=model.name, path=model.path, kind=model.kind, source=model.source,
                        licence=model.licence.to_json(), config=model.config,
                        files=tuple(installed.InstalledFile(f.path, f.size, f.sha256) for f in model.files))
                # The files and their record go in together: a failure in either puts everything back.
                undo = _commit(staging, root, to_copy)
                try:
                    installed.save_registry(record, root)
                except BaseException:
                    undo()
                    raise
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        except OSError as exc:
            raise PackError(f"{os_error_message(exc, 'the models folder')} The pack was not installed.") from None
    finally:
        source.close()
    report = InstallReport(models=list(manifest.models), copied=len(to_copy),
                           skipped=sum(len(m.files) for m in manifest.models) - len(to_copy))
    if use:
        try:
            report.roles_set = _use_installed(manifest, root)
        except (MegaPortraitError, OSError):
            report.roles_set = []  # unreadable settings: the models are installed, choosing them is left to the user
    return report


def _remove_stale_staging(root: Path) -> None:
    """Staging folders of installs killed before they finished (a day old: no install runs that long)."""
    for folder in root.glob(".incoming-*"):
        with contextlib.suppress(OSError):
            if folder.is_dir() and not folder.is_symlink() and time.time() - folder.stat().st_mtime > STALE_STAGING_S:
                shutil.rmtree(folder)


def _already_installed(root: Path, f: PackFile) -> bool:
    target = root / f.path
    if target.is_symlink() or not target.is_file() or target.stat().st_size != f.size:
        return False
    # Hashed, not trusted from the record: a file changed in place keeps its size.
    return sha256(target) == f.sha256


def _check_target(root: Path, relative: str) -> None:
    """Refuse, before anything is copied, a pack file whose place holds a folder, or whose folders are files or
    links (a link could lead the install out of the models folder)."""
    current = root
    parts = PurePosixPath(relative).parts
    for i, part in enumerate(parts):
        current = current / part
        last = i == len(parts) - 1
        if current.is_symlink():
            raise PackError(f"{current} is a link; the pack will not write through it (it could lead out of the "
                            "models folder). Remove the link and install again.")
        if not current.exists():
            return
        if last and current.is_dir():
            raise PackError(f"The pack puts the file {relative} where the models folder has a folder ({current}); "
                            "move that folder away and install again. Nothing was installed.")
        if not last and not current.is_dir():
            raise PackError(f"The pack needs {current} to be a folder, but it is a file; move it away and install "
                            "again. Nothing was installed.")


def _commit(staging: Path, root: Path, files: list[PackFile]) -> Callable[[], None]:
    """Move the checked files into place (each move an atomic rename on the same file system), keeping what
    they replace; returns the undo. Any failure here undoes the moves already made and re-raises."""
    replaced = staging / ".replaced"
    moved: list[tuple[Path, Path | None]] = []
    made: list[Path] = []

    def undo() -> None:
        for target, saved in reversed(moved):
            with contextlib.suppress(OSError):
                if saved is not None:
                    os.replace(saved, target)
                else:
                    target.unlink()
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()

    try:
        for f in files:
            target = root / f.path
            missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            made.extend(reversed(missing))
            saved = None
            if target.exists():
                saved = replaced / f.path
                saved.parent.mkdir(parents=True, exist_ok=True)
                os.replace(target, saved)
            moved.append((target, saved))
            os.replace(staging / f.path, target)
    except BaseException:
        undo()
        raise
    return undo


def _check_free_space(root: Path, needed: int) -> None:
    free = shutil.disk_usage(root).free
    # Keep a margin: a full disk also breaks the project store and the OS.
    if needed + (256 << 20) > free:
        raise PackError(f"Not enough free disk space in {root}: the pack needs {_gb(needed)}, {_gb(free)} is free.")


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _use_installed(manifest: Manifest, root: Path) -> list[str]:
    """Point each diffusion role with no working model at the installed one; the roles changed."""
    from ..diffusion.models import check_all

    settings = load_settings()
    problems = check_all(settings)
    changed = []
    for model in manifest.models:
        if (model.role in ROLES and model.kind != "config" and problems.get(model.role) is not None
                and model.role not in changed):
            config = str(root / model.config) if model.config else None
            settings = settings.with_model(model.role, ModelSpec(str(root / model.path), config))
            changed.append(model.role)
    if changed:
        save_settings(settings)
    return changed


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in large chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def find_pack_beside(folder: str | Path | None) -> Path | None:
    """An offline model pack placed beside the installer (a folder or zip with a readable manifest).

    The launcher passes the folder the archive was unpacked into; the app offers the first pack it
    finds there on a start where the diffusion models are not installed yet.
    """
    if not folder:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        return None
    candidates = [folder] + sorted(p for p in folder.iterdir() if p.is_dir() or p.suffix.lower() == ".zip")
    for candidate in candidates:
        try:
            read_manifest(candidate)
        except (PackError, OSError):
            continue
        return candidate
    return None
