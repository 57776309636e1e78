"""A studio shoot for the batch tests and the cluster benchmark: three clients (two real people and a
retouched set) and three or four references, made from the public-domain sample photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from megaportrait_desktop.project import Project, import_identity_photos, import_references


def build_shoot(root: Path, grace: np.ndarray, astronaut: np.ndarray, references: int = 3) -> Path:
    """The shoot's project under ``root`` (its photos beside it in ``root/files``), with the first
    ``references`` (3 or 4) of its references; the project's folder."""
    files = root / "files"
    files.mkdir(parents=True)
    Image.fromarray(grace).save(files / "grace.jpg", quality=92)
    Image.fromarray(grace[:, ::-1]).save(files / "grace_mirror.png")
    Image.fromarray(astronaut).save(files / "eileen.png")
    Image.fromarray(np.clip(grace.astype(int) + 12, 0, 255).astype(np.uint8)).save(files / "grace_bright.png")
    shots = {"ref_eileen_crop.png": astronaut[:400, 60:], "ref_eileen_mirror.png": astronaut[:, ::-1],
             "ref_grace_crop.png": grace[40:, :], "ref_grace_mirror.png": grace[:, ::-1][20:, 10:]}
    for name in sorted(shots)[:references]:
        Image.fromarray(np.ascontiguousarray(shots[name])).save(files / name)
    project_dir = root / "project"
    with Project.create(project_dir) as project:
        for name, photos in (("Grace", ["grace.jpg", "grace_mirror.png"]), ("Eileen", ["eileen.png"]),
                             ("Grace bright", ["grace_bright.png"])):
            import_identity_photos(project, project.create_identity(name), [files / p for p in photos])
        import_references(project, sorted(files.glob("ref_*.png")))
    return project_dir
