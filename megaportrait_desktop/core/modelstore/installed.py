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

from ..atomic_write import write_bytes_atomically
from ..paths import models_dir as default_models_dir

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
        return cls(role=data["role"], name=data.get("name", ""), path=data["path"], kind=data.get("kind", "folder"),
                   source=data.get("source", ""), licence=data.get("licence") or {}, config=data.get("config"),
                   files=tuple(InstalledFile(f["path"], int(f["size"]), f["sha256"]) for f in data.get("files", ())))


def registry_path(models_dir: Path | None = None) -> Path:
    return (models_dir or default_models_dir()) / REGISTRY_FILE


def load_registry(models_dir: Path | None = None) -> dict[str, InstalledModel]:
    """Installed models keyed by their path; an unreadable record counts as empty (the files decide)."""
    path = registry_path(models_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {m["path"]: InstalledModel.from_json(m) for m in data.get("models", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


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
