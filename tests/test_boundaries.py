"""core/ and project/ never load Qt (DESIGN.md §4)."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import importlib, pkgutil, sys
import megaportrait_desktop.core as core, megaportrait_desktop.project as project
for pkg in (core, project):
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        importlib.import_module(mod.name)
qt = sorted(m for m in sys.modules if m.split(".")[0] in {"PySide6", "shiboken6", "superqt", "qtawesome", "qtpy"})
print("loaded:", len([m for m in sys.modules if m.startswith("megaportrait_desktop.")]))
print("qt:", qt)
"""


def test_core_and_project_load_no_qt() -> None:
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, check=True).stdout
    assert "qt: []" in out, out
    loaded = int(out.split("loaded:")[1].split()[0])
    assert loaded >= 10  # the walk really imported the core modules
