"""Where the app keeps its files: user config, user data (models), and the bundled resources."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from platformdirs import user_cache_path, user_config_path, user_data_path

APP_NAME = "MegaPortrait"


def resources_dir() -> Path:
    """The ``resources/`` folder, in a checkout or inside a PyInstaller bundle."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def demo_dir() -> Path:
    """The bundled demo identity and reference."""
    return resources_dir() / "demo"


def config_dir() -> Path:
    """The user's settings folder (``MEGAPORTRAIT_CONFIG`` overrides it, e.g. in tests)."""
    return Path(os.environ.get("MEGAPORTRAIT_CONFIG") or user_config_path(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Where models live, outside any bundle (``MEGAPORTRAIT_MODELS`` overrides it)."""
    return Path(os.environ.get("MEGAPORTRAIT_MODELS") or user_data_path(APP_NAME, appauthor=False) / "models")


def cache_dir() -> Path:
    """Rebuildable files, such as compiled GPU kernels (``MEGAPORTRAIT_CACHE`` overrides it)."""
    return Path(os.environ.get("MEGAPORTRAIT_CACHE") or user_cache_path(APP_NAME, appauthor=False))
