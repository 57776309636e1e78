"""Rebuild ``resources/sd15/``: the SD 1.5 component configs and the CLIP tokenizer the app ships.

A single ``.safetensors`` checkpoint in the original Stable Diffusion layout carries weights only; its
shape comes from these configs, so it loads with no network at all. The configs are the published SD 1.5
hyper-parameters (``stable-diffusion-v1-5``'s and ``lllyasviel/control_v11*_sd15_*``'s ``config.json``);
the tokenizer's ``vocab.json`` and ``merges.txt`` are built from the CLIP BPE merges that ship in
``open_clip_torch`` (``bpe_simple_vocab_16e6.txt.gz``), the same way CLIP's own tokenizer builds them.

    .venv/bin/pip install open_clip_torch==3.3.0   # in the test extra
    .venv/bin/python scripts/build_sd15_resources.py [--out resources/sd15]
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: CLIP's vocabulary: 256 byte symbols, the same with an end-of-word mark, 48,894 merges, 2 specials.
N_MERGES = 49152 - 256 - 2

DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]

MODEL_INDEX = {
    "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.42.1",
    "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
    "scheduler": ["diffusers", "PNDMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
    "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
    "vae": ["diffusers", "AutoencoderKL"],
}
SCHEDULER = {
    "_class_name": "PNDMScheduler", "_diffusers_version": "0.42.1", "beta_end": 0.012,
    "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False, "num_train_timesteps": 1000,
    "set_alpha_to_one": False, "skip_prk_steps": True, "steps_offset": 1, "trained_betas": None,
}
TEXT_ENCODER = {
    "architectures": ["CLIPTextModel"], "attention_dropout": 0.0, "bos_token_id": 0, "dropout": 0.0,
    "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768, "initializer_factor": 1.0,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 77,
    "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 1,
    "projection_dim": 768, "torch_dtype": "float32", "vocab_size": 49408,
}
UNET = {
    "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.42.1", "act_fn": "silu",
    "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": False,
    "cross_attention_dim": 768, "down_block_types": DOWN, "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
    "norm_num_groups": 32, "out_channels": 4, "sample_size": 64, "up_block_types": UP,
}
VAE = {
    "_class_name": "AutoencoderKL", "_diffusers_version": "0.42.1", "act_fn": "silu",
    "block_out_channels": [128, 256, 512, 512], "down_block_types": ["DownEncoderBlock2D"] * 4, "in_channels": 3,
    "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32, "out_channels": 3, "sample_size": 512,
    "scaling_factor": 0.18215, "up_block_types": ["UpDecoderBlock2D"] * 4,
}
CONTROLNET = {
    "_class_name": "ControlNetModel", "_diffusers_version": "0.42.1", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "class_embed_type": None,
    "conditioning_embedding_out_channels": [16, 32, 96, 256], "controlnet_conditioning_channel_order": "rgb",
    "cross_attention_dim": 768, "down_block_types": DOWN, "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
    "norm_num_groups": 32, "num_class_embeds": None, "only_cross_attention": False,
    "projection_class_embeddings_input_dim": None, "resnet_time_scale_shift": "default", "upcast_attention": False,
    "use_linear_projection": False,
}
SPECIALS = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
            "unk_token": "<|endoftext|>"}
TOKENIZER_CONFIG = {"add_prefix_space": False, "do_lower_case": True, "errors": "replace", "model_max_length": 77,
                    "tokenizer_class": "CLIPTokenizer", **SPECIALS}


def bytes_to_unicode() -> dict[int, str]:
    """CLIP's (and GPT-2's) reversible map from bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs), strict=True))


def clip_vocab_and_merges(bpe_gz: Path) -> tuple[dict[str, int], list[str]]:
    """The tokenizer's vocabulary and merges from CLIP's gzipped BPE file (as open_clip's SimpleTokenizer reads it)."""
    with gzip.open(bpe_gz) as f:
        lines = f.read().decode("utf-8").split("\n")
    merges = lines[1:N_MERGES + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(vocab)}, merges


def write(out: Path, bpe_gz: Path) -> None:
    def dump(path: Path, data: object) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    base = out / "base"
    dump(base / "model_index.json", MODEL_INDEX)
    dump(base / "scheduler" / "scheduler_config.json", SCHEDULER)
    dump(base / "text_encoder" / "config.json", TEXT_ENCODER)
    dump(base / "unet" / "config.json", UNET)
    dump(base / "vae" / "config.json", VAE)
    vocab, merges = clip_vocab_and_merges(bpe_gz)
    tokenizer = base / "tokenizer"
    tokenizer.mkdir(parents=True, exist_ok=True)
    (tokenizer / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (tokenizer / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    dump(tokenizer / "special_tokens_map.json", SPECIALS)
    dump(tokenizer / "tokenizer_config.json", TOKENIZER_CONFIG)
    dump(out / "controlnet" / "config.json", CONTROLNET)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "resources" / "sd15")
    parser.add_argument("--bpe", type=Path, help="bpe_simple_vocab_16e6.txt.gz (default: open_clip's)")
    args = parser.parse_args()
    if args.bpe is None:
        from open_clip.tokenizer import default_bpe

        args.bpe = Path(default_bpe())
    write(args.out, args.bpe)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
