"""Exports and project files are created with the user's usual mode (0644 under umask 022), not 0600."""

from __future__ import annotations

import os
import stat
import sys

import numpy as np
import pytest

from megaportrait_desktop.core.atomic_write import NEW_FILE_MODE
from megaportrait_desktop.project import Project
from megaportrait_desktop.project.exchange import export_output


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_exports_and_project_objects_follow_the_umask(tmp_path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    assert 0o666 & ~umask == NEW_FILE_MODE
    with Project.create(tmp_path / "studio") as project:
        image = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
        output_id = project.record_output(request={}, engine="classic", final=image, stages={"A": image[:30]})
        out = project.output(output_id)
        stored = [project.path_of(out.final_path), project.path_of(out.thumb_path),
                  *(project.path_of(p) for p in out.stages.values())]
        exports = [export_output(project, output_id, tmp_path / f"delivery{suffix}")
                   for suffix in (".jpg", ".png", ".tif")]
    for path in stored + exports:
        assert _mode(path) == NEW_FILE_MODE, (path, oct(_mode(path)))
    if umask == 0o022:
        assert NEW_FILE_MODE == 0o644  # readable by the colleague or web server the photos go to
