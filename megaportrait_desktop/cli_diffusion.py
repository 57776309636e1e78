"""The diffusion engine's command-line parts: ``train-identity`` and the model-pointing flags.

Kept out of ``cli.py`` so that module stays a short list of commands; ``cli.py`` calls
:func:`add_train_parser`, :func:`add_model_arguments` and the two command functions below.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .core.model_settings import SWITCHES

ROLE_FLAGS = {
    "base": "base model: a diffusers folder, one .safetensors file, or a cached Hugging Face repo id",
    "face_controlnet": "face-geometry ControlNet (folder, .safetensors or repo id)",
    "light_controlnet": "light (tile) ControlNet",
    "detail_controlnet": "detail (lineart/softedge/canny) ControlNet",
    "inpaint_controlnet": "inpaint ControlNet",
}


def add_model_arguments(parser: argparse.ArgumentParser, roles: tuple[str, ...] = tuple(ROLE_FLAGS)) -> None:
    """``--base``, ``--face-controlnet`` … ``--models-settings``, ``--save-models``, ``--device``."""
    group = parser.add_argument_group("diffusion models (default: the model settings file)")
    for role in roles:
        group.add_argument(f"--{role.replace('_', '-')}", dest=role, metavar="PATH_OR_REPO", help=ROLE_FLAGS[role])
    group.add_argument("--model-config", action="append", default=[], metavar="ROLE=PATH_OR_REPO",
                       help="diffusers config (folder or cached repo id) for a single-file model, e.g. "
                            "base=/models/sd15-config; repeatable")
    group.add_argument("--models-settings", metavar="FILE",
                       help="a models.json to use instead of the one in the config folder")
    group.add_argument("--save-models", action="store_true",
                       help="remember the models given here in the model settings file")
    group.add_argument("--device", choices=["auto", "cuda", "mps", "cpu"], help="where to compute")
    group.add_argument("--fast-path", choices=SWITCHES,
                       help="the GPU fast path for this command (default: the settings, on for CUDA); off runs the "
                            "stock diffusers calls")
    group.add_argument("--low-memory", choices=SWITCHES,
                       help="the fast path's low-memory mode (under 8 GiB) for this command")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train-identity", help="train an identity LoRA on the client's photos (diffusion engine)")
    train.add_argument("--identity", required=True, help="folder of the client's photos (or one photo)")
    train.add_argument("--out", required=True, help="folder for identity_lora.safetensors and its kohya export")
    train.add_argument("--steps", type=int, default=400, help="training steps (default: %(default)s)")
    train.add_argument("--rank", type=int, default=8, help="LoRA rank (default: %(default)s)")
    train.add_argument("--learning-rate", type=float, default=1e-4, help="AdamW learning rate (default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=1, help="crops per step (default: %(default)s)")
    train.add_argument("--seed", type=int, default=0, help="same seed, same device → same LoRA (default: 0)")
    train.add_argument("--resolution", type=int, default=512, help="training crop size (default 512)")
    train.add_argument("--token", default="sks", help="the rare token that names the client in prompts")
    train.add_argument("--train-text-encoder", action="store_true", help="also put a LoRA on the text encoder")
    add_model_arguments(train, roles=("base",))


def add_run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("--lora", help="identity LoRA (.safetensors from train-identity) for the diffusion engine")
    run.add_argument("--face-control", choices=["mediapipe_face", "canny", "lineart_standard", "lineart", "softedge"],
                     help="face-geometry control image for the diffusion engine")
    add_model_arguments(run)


def engine_from_args(args: argparse.Namespace):
    """A :class:`DiffusionEngine` over the settings file (or ``--models-settings``) plus the flags."""
    from .core.diffusion.engine import DiffusionEngine
    from .core.errors import RequestError
    from .core.model_settings import ROLES, ModelSpec, load_settings, save_settings

    path = Path(args.models_settings) if getattr(args, "models_settings", None) else None
    settings = load_settings(path)
    configs = {}
    for item in getattr(args, "model_config", None) or []:
        role, sep, value = item.partition("=")
        if not sep or role.replace("-", "_") not in ROLES:
            raise RequestError(f"--model-config {item!r}: write ROLE=PATH_OR_REPO with ROLE one of {', '.join(ROLES)}.")
        configs[role.replace("-", "_")] = _local(value)
    for role in ROLES:
        value = getattr(args, role, None)
        if value:
            settings = settings.with_model(role, ModelSpec(_local(value), configs.get(role)))
        elif role in configs and role in settings.models:
            settings = settings.with_model(role, ModelSpec(settings.models[role].source, configs[role]))
    from dataclasses import replace

    for flag in ("fast_path", "low_memory"):
        if getattr(args, flag, None):
            settings = replace(settings, **{flag: getattr(args, flag)})
    if getattr(args, "save_models", False):
        print(f"Saved the model choices to {save_settings(settings, path)}", file=sys.stderr)
    return DiffusionEngine(settings)


def diffusion_overrides(args: argparse.Namespace) -> dict:
    """The ``DiffusionParams`` fields the ``run`` flags set (model sources are recorded in the request)."""
    from .core.model_settings import ROLES

    values: dict = {role: _local(v) for role in ROLES if (v := getattr(args, role, None))}
    if args.lora:
        values["lora"] = str(Path(args.lora).resolve())
    if args.face_control:
        values["face_control"] = args.face_control
    if args.device:
        values["device"] = args.device
    return values


def _local(value: str) -> str:
    """An existing path made absolute (requests outlive the working folder); a repo id as given."""
    return str(Path(value).resolve()) if Path(value).exists() else value


def train_identity(args: argparse.Namespace, photos: list[Path]) -> int:
    import time

    from .core.diffusion.training import TrainingParams
    from .core.progress import Reporter

    params = TrainingParams(token=args.token, rank=args.rank, steps=args.steps, learning_rate=args.learning_rate,
                            batch_size=args.batch_size, seed=args.seed, resolution=args.resolution,
                            train_text_encoder=args.train_text_encoder)
    engine = engine_from_args(args)
    started = time.perf_counter()
    last = [0.0]

    def show(progress) -> None:
        now = time.perf_counter()
        # One line a second at most: a 400-step training would otherwise flood the terminal.
        if progress.step in (0, progress.total) or now - last[0] >= 1.0:
            print(f"[{progress.stage}] {progress.message}", file=sys.stderr)
            last[0] = now

    result = engine.train_identity(photos, args.out, params, Reporter(show), device=args.device)
    resumed = f", resumed at step {result.resumed_from}" if result.resumed_from else ""
    print(f"Wrote {result.lora_path} and {result.kohya_path.name} in {time.perf_counter() - started:.1f} s"
          f"{resumed}; final loss {result.losses[-1]:.4f}. Prompt with {result.prompt!r}.")
    return 0
