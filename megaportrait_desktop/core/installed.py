"""The record of installed models: ``installed.json`` in the models folder.

Each installed model (from a pack or a download) is recorded with its role, source, licence and every
file's size and SHA-256, so the manager can tell a damaged install (a file missing, truncated or
changed) from a healthy one without the user keeping notes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic_write import write_bytes_atomically
from .paths import models_dir as default_models_dir

REGISTRY_FILE = "installed.json"


@dataclass(frozen=True)
class InstalledFile:
    """One file of an installed model: ``path`` relative to the models folder (POSIX separators)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class InstalledModel:
    """A model the app installed: ``path`` (relative to the models folder) is its folder or single file."""

    role: str
    name: str
    path: str
    kind: str
    source: str = ""
    licence: dict[str, Any] = field(default_factory=dict)
    config: str | None = None
    files: tuple[InstalledFile, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role, "name": self.name, "path": self.path, "kind": self.kind, "source": self.source,
                "licence": self.licence, "config": self.config,
                "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InstalledModel:
        """One record; ``ValueError`` when any field has the wrong type or a path leaves the models folder."""
        if not isinstance(data, dict) or not isinstance(data.get("files", []), list):
            raise ValueError("not a model record")
        files = []
        for f in data.get("files", ()):
            if not isinstance(f, dict) or type(f.get("size")) is not int or not isinstance(f.get("sha256"), str):
                raise ValueError("not a file record")
            files.append(InstalledFile(_relative(f.get("path")), f["size"], f["sha256"]))
        licence = data.get("licence") or {}
        config = data.get("config")
        texts = (data["role"], data.get("name", ""), data.get("kind", "folder"), data.get("source", ""))
        if not all(isinstance(t, str) for t in texts) or not isinstance(licence, dict | str):
            raise ValueError("not a model record")
        return cls(role=texts[0], name=texts[1], path=_relative(data["path"]), kind=texts[2], source=texts[3],
                   licence=licence if isinstance(licence, dict) else {"id": licence},
                   config=None if config is None else _relative(config), files=tuple(files))


def _relative(value: object) -> str:
    """A POSIX path inside the models folder (the record is a file anyone could edit)."""
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value or ":" in value \
            or any(part in ("", ".", "..") for part in value.split("/")):
        raise ValueError(f"{str(value)[:80]!r} is not a path inside the models folder")
    return value


def registry_path(models_dir: Path | None = None) -> Path:
    return (models_dir or default_models_dir()) / REGISTRY_FILE


def load_registry(models_dir: Path | None = None) -> dict[str, InstalledModel]:
    """Installed models keyed by their path; an unreadable record counts as empty (the files decide)."""
    path = registry_path(models_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    entries = data.get("models") if isinstance(data, dict) else None
    out = {}
    for entry in entries if isinstance(entries, list) else []:
        try:
            model = InstalledModel.from_json(entry)
        except (ValueError, KeyError, TypeError):
            continue  # one damaged record: the others still count
        out[model.path] = model
    return out


def save_registry(models: dict[str, InstalledModel], models_dir: Path | None = None) -> Path:
    """Write the record atomically (a temporary file renamed over the old one)."""
    path = registry_path(models_dir)
    data = {"version": 1, "models": [m.to_json() for _, m in sorted(models.items())]}
    write_bytes_atomically(path, json.dumps(data, indent=1).encode("utf-8"))
    return path


def find(path: Path, models_dir: Path | None = None) -> InstalledModel | None:
    """The record of the model installed at ``path`` (absolute, or relative to the models folder)."""
    root = (models_dir or default_models_dir()).resolve()
    try:
        rel = Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return None
    return load_registry(models_dir).get(rel)
