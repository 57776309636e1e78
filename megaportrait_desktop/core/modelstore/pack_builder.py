"""Building an offline model pack from the models this machine has installed (``python main.py models pack``).

The format is described in :mod:`.packs`; a pack built here installs with :func:`.packs.install_pack`
on another machine.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import installed
from ..licences import ROLE_LICENCES, Licence
from ..model_settings import ModelSettings, load_settings
from ..paths import models_dir as default_models_dir
from ..progress import Reporter
from .packs import ALLOWED_SUFFIXES, FIXED_PATHS, MANIFEST, PACK_ROLES, Manifest, PackError, PackFile, PackModel, sha256


def build_pack(out: str | Path, models_dir: Path | None = None, settings: ModelSettings | None = None,
               roles: tuple[str, ...] = PACK_ROLES, reporter: Reporter | None = None) -> Manifest:
    """Build a pack from the installed models of ``roles`` (those that resolve to local files).

    ``out`` is a folder, or a zip when it ends in ``.zip``. Models in the Hugging Face cache are copied
    from their snapshot (links followed); only safetensors weights and the small config files go in.

    Raises
    ------
    PackError
        When there is nothing to pack or ``out`` already exists.
    """
    from ..diffusion.models import ModelMissingError, resolve
    from ..face import buffalo_l_dir

    root = models_dir or default_models_dir()
    settings = settings if settings is not None else load_settings()
    out = Path(out)
    if out.exists():
        raise PackError(f"{out} already exists; choose a new folder or zip name.")
    sources: list[tuple[PackModel, Path]] = []
    for role in roles:
        if role == "insightface":
            folder = buffalo_l_dir(root)
            if folder.is_dir() and any(folder.glob("*.onnx")):
                sources.append((_pack_model(role, "buffalo_l", FIXED_PATHS[role], folder, "insightface buffalo_l",
                                            root), folder))
            continue
        spec = settings.models.get(role)
        try:
            resolved = resolve(role, spec)
        except ModelMissingError:
            continue
        name = resolved.path.stem if resolved.kind == "single_file" else resolved.path.name
        if resolved.path.parent.name == "snapshots":  # an HF cache snapshot: name it for its repo
            name = resolved.path.parent.parent.name.removeprefix("models--").replace("--", "_")
        rel = f"{role}/{name}" + (".safetensors" if resolved.kind == "single_file" else "")
        model = _pack_model(role, name, rel, resolved.path, spec.source if spec else "", root)
        if resolved.kind == "single_file" and resolved.config is not None:
            config_model = _pack_model(role, name + "-config", f"{role}/{name}-config", resolved.config, "", root,
                                       config_only=True)
            sources.append((config_model, resolved.config))
            model = replace(model, config=config_model.path)
        sources.append((model, resolved.path))
    if not sources:
        raise PackError("No installed model to pack: set the models first (python main.py models list).")
    manifest = Manifest(tuple(m for m, _ in sources), datetime.now(UTC).isoformat(timespec="seconds"))
    tmp = out.with_name(f".{out.name}.partial")
    try:
        _write_pack(tmp, out.suffix.lower() == ".zip", sources, manifest, reporter)
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return manifest


def _pack_files(folder: Path, config_only: bool = False) -> Iterator[tuple[Path, str]]:
    """The files of a model folder that belong in a pack (weights as safetensors, small configs).

    ``config_only`` leaves the weights out: a single file's config folder may be a whole cached model.
    """
    if folder.is_file():
        yield folder, ""
        return
    allowed = {".json", ".txt", ".yaml"} if config_only else ALLOWED_SUFFIXES
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts) and p.suffix.lower() in allowed:
            yield p, rel.as_posix()


def _pack_model(role: str, name: str, rel: str, path: Path, source: str, root: Path,
                config_only: bool = False) -> PackModel:
    record = installed.find(path, root)
    licence = Licence.from_json(record.licence) if record and record.licence else ROLE_LICENCES[role]
    files = []
    for file, inner in _pack_files(path, config_only):
        files.append(PackFile(f"{rel}/{inner}" if inner else rel, file.stat().st_size, sha256(file)))
    kind = "config" if config_only else "single_file" if path.is_file() else "folder"
    return PackModel(role=role, name=name, kind=kind, path=rel, files=tuple(files), licence=licence,
                     source=(record.source if record else "") or source)


def _write_pack(target: Path, as_zip: bool, sources: list[tuple[PackModel, Path]], manifest: Manifest,
                reporter: Reporter | None) -> None:
    total = sum(f.size for m, _ in sources for f in m.files)
    done = 0

    @contextmanager
    def writer() -> Iterator[Any]:
        if as_zip:
            # Weights do not compress; storing them keeps packing and installing fast.
            with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as z:
                yield z
        else:
            target.mkdir(parents=True)
            yield None

    with writer() as z:
        for model, path in sources:
            for f, (file, _) in zip(model.files, _pack_files(path, model.kind == "config"), strict=True):
                if z is not None:
                    z.write(file, f.path)
                else:
                    dest = target / f.path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(file, dest)
                done += f.size
                if reporter is not None:
                    reporter("pack", done, total, f.path)
        text = json.dumps(manifest.to_json(), indent=1)
        if z is not None:
            z.writestr(MANIFEST, text)
        else:
            (target / MANIFEST).write_text(text, encoding="utf-8")
