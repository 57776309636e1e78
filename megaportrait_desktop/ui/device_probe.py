"""Start-up checks that import heavy modules, so they run off the GUI thread: the device and GPU
memory for the status bar, and whether diffusion models (or a pack beside the installer) exist."""

from __future__ import annotations

import os

from PySide6.QtWidgets import QMessageBox

from .workers import run_in_background


def probe_device() -> str:
    """Device and GPU memory for the status bar. Imports torch, so it runs on a worker thread."""
    try:
        import torch
    except ImportError:
        return "Device: CPU (no PyTorch: classic engine only)"
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        return (f"Device: {torch.cuda.get_device_name(0)} · GPU memory {(total - free) / 2**30:.1f} of "
                f"{total / 2**30:.0f} GiB in use")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Device: Apple GPU (MPS)"
    return "Device: CPU (no GPU found: the diffusion engine will be slow)"


def find_models_or_pack() -> str | None:
    """``None`` when the base model is installed; else the path of a pack beside the installer, or ``""``."""
    from ..core.modelstore.manager import role_state
    from ..core.modelstore.packs import find_pack_beside

    if role_state("base").state == "installed":
        return None
    return str(find_pack_beside(os.environ.get("MEGAPORTRAIT_PACK_DIR")) or "")


def offer_models(window) -> None:
    """On a start without diffusion models: offer a pack found beside the installer, else say where
    models come from. The classic engine works either way, so nothing here blocks."""

    def checked(pack: str | None) -> None:
        if pack is None:
            return  # the base model is installed
        if not pack:
            window.statusBar().showMessage("No diffusion models installed yet: the classic engine works now; "
                                           "Models → Model Manager installs them.", 15_000)
            return
        answer = QMessageBox.question(window, "Install models",
                                      f"A model pack was found beside MegaPortrait:\n{pack}\n\nInstall it now? "
                                      "Every file's hash is checked; nothing is changed if the pack is damaged.")
        if answer == QMessageBox.StandardButton.Yes:
            window.show_model_settings()
            window.model_dialog.install_pack(pack)

    window.track(run_in_background(find_models_or_pack, on_done=checked, on_error=lambda exc: None))
