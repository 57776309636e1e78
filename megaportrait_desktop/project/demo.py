"""The demo project: the bundled public-domain photos, imported into a project on first start."""

from __future__ import annotations

from pathlib import Path

from ..core.paths import demo_dir, models_dir
from .imports import import_identity_photos, import_references
from .project import DB_NAME, Project

DEMO_IDENTITY = "Grace Hopper (demo)"


def default_demo_location() -> Path:
    """Beside the models folder in the user's data folder (outside any app bundle)."""
    return models_dir().parent / "Demo project"


def ensure_demo_project(root: Path | None = None) -> Path:
    """Create the demo project at ``root`` if it is not there yet; returns its folder."""
    root = root or default_demo_location()
    if (root / DB_NAME).is_file():
        return root
    demo = demo_dir()
    with Project.create(root, name="Demo") as project:
        identity = project.create_identity(DEMO_IDENTITY, notes="Public-domain U.S. Navy photograph, and its mirror.")
        import_identity_photos(project, identity, sorted((demo / "identity").glob("*.jpg")))
        import_references(project, sorted((demo / "reference").glob("*.jpg")))
    return root
