"""MegaPortrait Desktop: put a client's face into a reference portrait, offline."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("megaportrait-desktop")
except PackageNotFoundError:  # running from a frozen bundle or an uninstalled checkout
    __version__ = "0.0.0"
