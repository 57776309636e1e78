"""Identity LoRA files: the diffusers format the engine loads, and the kohya format other tools load.

The diffusers file (``unet.…lora.down.weight`` keys) is what ``load_lora_weights`` reads. AUTOMATIC1111,
ComfyUI, SD.Next and InvokeAI read kohya-ss keys (``lora_unet_…​.lora_down.weight``, one ``.alpha`` per
layer, the SD 1.x text encoder under ``lora_te_text_model_…``); :func:`export_kohya` writes those.
"""

from __future__ import annotations

from pathlib import Path

import torch

LORA_FILE = "identity_lora.safetensors"
KOHYA_FILE = "identity_lora_kohya.safetensors"


def export_kohya(lora_path: str | Path, out_path: str | Path | None = None, alpha: float | None = None) -> Path:
    """Convert a diffusers-format LoRA file into a kohya/A1111 one.

    Parameters
    ----------
    lora_path:
        A LoRA saved by :func:`..training.train_identity` (diffusers keys).
    out_path:
        Where to write; default: ``identity_lora_kohya.safetensors`` beside ``lora_path``.
    alpha:
        The LoRA alpha to record (kohya scales by ``alpha / rank``); default: the file's metadata, else the rank.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    lora_path = Path(lora_path)
    with safe_open(str(lora_path), framework="pt") as f:
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
        metadata = f.metadata() or {}
    if alpha is None and "megaportrait.lora_alpha" in metadata:
        alpha = float(metadata["megaportrait.lora_alpha"])
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name, part = _split(key)
        out[f"{name}.lora_{part}.weight"] = value.contiguous()
        if part == "down":
            out[f"{name}.alpha"] = torch.tensor(float(alpha if alpha is not None else value.shape[0]))
    out_path = Path(out_path) if out_path else lora_path.with_name(KOHYA_FILE)
    save_file(out, str(out_path), metadata={"ss_network_module": "networks.lora", "ss_base_model_version": "sd_v1",
                                            **{k: v for k, v in metadata.items() if k.startswith("megaportrait.")}})
    return out_path


def _split(key: str) -> tuple[str, str]:
    """``unet.a.b.lora.down.weight`` → (``lora_unet_a_b``, ``down``); likewise for the text encoder.

    diffusers names the LoRA of a module ``<module>.lora.{down,up}`` (UNet) or
    ``<module>.lora_linear_layer.{down,up}`` (text encoder); kohya-ss joins the module path with
    underscores under ``lora_unet_`` / ``lora_te_text_model_`` (transformers 5 dropped the
    ``text_model`` wrapper that A1111 still expects).
    """
    for marker in (".lora_linear_layer.", ".lora."):
        if marker in key:
            module, rest = key.split(marker, 1)
            part = rest.split(".")[0]
            break
    else:
        raise ValueError(f"not a diffusers LoRA key: {key}")
    owner, _, path = module.partition(".")
    if owner == "unet":
        return "lora_unet_" + path.replace(".", "_"), part
    if owner == "text_encoder":
        path = path.removeprefix("text_model.")
        return "lora_te_text_model_" + path.replace(".", "_"), part
    raise ValueError(f"LoRA for an unknown model {owner!r} in {key}")
