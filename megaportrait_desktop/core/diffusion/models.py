"""Model resolution: which weights play each role, where they are, and loading them safely.

Every role (:data:`ROLES`) names one model, given as

- a local **diffusers folder** (``model_index.json`` for the base, ``config.json`` for a ControlNet);
- a single **``.safetensors``** checkpoint in the original layout (loaded with ``from_single_file``;
  its diffusers config comes from ``config``, a folder or a repo id in the local cache, or by default
  from the SD 1.5 configs and CLIP tokenizer shipped in ``resources/sd15``: no network needed);
- a **Hugging Face repo id** already in the local Hugging Face cache (shared with other tools, never
  downloaded here: ``local_files_only=True``).

Only safetensors are loaded. Pickle checkpoints (``.ckpt``, ``.bin``, ``.pt``, ``.pth``) can run code
when unpickled, so they are refused with a message saying why and how to convert them.

The user's choices live in ``models.json`` in the config folder (:mod:`..model_settings`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ErrorKind, MegaPortraitError, ModelMissingError
from ..model_settings import (
    ADAPTER_ROLES,
    ROLE_NAMES,
    ROLE_SUGGESTIONS,
    ROLES,
    ModelSettings,
    ModelSpec,
    _check_role,
    where_to_set,
)

PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl", ".pickle")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class UnsafeModelError(MegaPortraitError):
    """A model in a pickle format: loading it could run arbitrary code, so it is refused."""

    kind = ErrorKind.MODELS


@dataclass(frozen=True)
class ResolvedModel:
    """A spec made concrete: ``kind`` is ``"folder"`` or ``"single_file"``; ``config`` a folder or ``None``."""

    role: str
    kind: str
    path: Path
    config: Path | None = None


def shipped_config(role: str) -> Path:
    """The SD 1.5 diffusers config folder that ships with the app for ``role``'s single files.

    ``resources/sd15/base`` (unet, vae, text_encoder, CLIP tokenizer, scheduler) for the base and
    ``resources/sd15/controlnet`` for the ControlNets; ``scripts/build_sd15_resources.py`` rebuilds them.
    """
    from ..paths import resources_dir

    _check_role(role)
    return resources_dir() / "sd15" / ("base" if role == "base" else "controlnet")


def resolve(role: str, spec: ModelSpec | str | None) -> ResolvedModel:
    """Find ``role``'s weights on disk without loading them.

    Raises
    ------
    ModelMissingError
        When no model is set or it is not on this machine; the message names the role and what to install.
    UnsafeModelError
        For a pickle checkpoint.
    """
    _check_role(role)
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        raise ModelMissingError(f"No {ROLE_NAMES[role]} is set. Install {ROLE_SUGGESTIONS[role]}: "
                                f"{where_to_set(role)}.")
    spec = spec if isinstance(spec, ModelSpec) else ModelSpec(str(spec))
    source = spec.source.strip()
    path = Path(source).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _unsafe(role, path.name)
    if role in ADAPTER_ROLES:
        return _resolve_lora_file(role, source, path)
    if path.is_dir():
        _check_folder(role, path)
        return ResolvedModel(role, "folder", path)
    if path.is_file():
        if path.suffix.lower() != ".safetensors":
            raise UnsafeModelError(f"{path.name} ({ROLE_NAMES[role]}): only .safetensors files or diffusers "
                                   "folders can be loaded.")
        if spec.config is None:
            # The SD 1.5 configs and CLIP tokenizer ship with the app: a fine-tune loads with no network.
            return ResolvedModel(role, "single_file", path, shipped_config(role))
        config_path = Path(spec.config).expanduser()
        if not config_path.is_dir():
            config_path = _cached_repo(role, spec.config, what="the configuration for the single file")
        return ResolvedModel(role, "single_file", path, config_path)
    if _REPO_ID.match(source) and not path.exists() and not source.startswith((".", "/", "~")):
        folder = _cached_repo(role, source, what="the model")
        _check_folder(role, folder)
        return ResolvedModel(role, "folder", folder)
    raise ModelMissingError(f"The {ROLE_NAMES[role]} {source!r} is not on this machine. Install "
                            f"{ROLE_SUGGESTIONS[role]}, or point MegaPortrait at the folder or file: "
                            f"{where_to_set(role)}.")


def _resolve_lora_file(role: str, source: str, path: Path) -> ResolvedModel:
    """A LoRA is one ``.safetensors`` file: given as the file, a folder holding it, or a cached repo id."""
    if not path.exists() and _REPO_ID.match(source) and not source.startswith((".", "/", "~")):
        path = _cached_repo(role, source, what="the LoRA")
    if path.is_dir():
        files = sorted(path.glob("*.safetensors"))
        named = [f for f in files if f.name == "pytorch_lora_weights.safetensors"]
        if not (named or len(files) == 1):
            pickles = [f.name for f in path.iterdir() if f.suffix.lower() in PICKLE_SUFFIXES]
            if pickles and not files:
                raise _unsafe(role, pickles[0])
            raise ModelMissingError(f"{path} holds {len(files)} .safetensors files; choose the {ROLE_NAMES[role]} "
                                    "file itself.")
        path = (named or files)[0]
    if not path.is_file():
        raise ModelMissingError(f"The {ROLE_NAMES[role]} {source!r} is not on this machine. Install "
                                f"{ROLE_SUGGESTIONS[role]}.")
    if path.suffix.lower() != ".safetensors":
        raise UnsafeModelError(f"{path.name} ({ROLE_NAMES[role]}): only .safetensors files can be loaded.")
    return ResolvedModel(role, "lora_file", path)


def resolve_all(settings: ModelSettings, overrides: dict[str, str | None] | None = None,
                roles: tuple[str, ...] = ROLES) -> dict[str, ResolvedModel]:
    """Resolve ``roles`` from the settings, with per-run ``overrides`` (a source string per role) on top.

    Raises :class:`~megaportrait_desktop.core.licences.LicenceNotAcceptedError` for a model
    whose restrictive licence (from its pack's manifest) the user has not accepted yet.
    """
    overrides = overrides or {}
    out = {}
    for role in roles:
        override = overrides.get(role)
        spec = ModelSpec(override) if override else settings.models.get(role)
        if override and role in settings.models and settings.models[role].source == override:
            spec = settings.models[role]  # keep its config
        out[role] = resolve(role, spec)
    # A model installed from a pack under a restrictive licence is used only once the user accepted it.
    from ..licences import licence_of, require_accepted

    for role, model in out.items():
        require_accepted(role, licence_of(role, model.path), settings)
    return out


def check_all(settings: ModelSettings) -> dict[str, str | None]:
    """For a settings dialog: per role, ``None`` when it resolves, else the message saying what to install."""
    out: dict[str, str | None] = {}
    for role in ROLES:
        try:
            resolve(role, settings.models.get(role))
            out[role] = None
        except (ModelMissingError, UnsafeModelError) as exc:
            out[role] = str(exc)
    return out


def load_base(model: ResolvedModel, dtype: Any = None) -> dict[str, Any]:
    """The base model's components (``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler``)."""
    from diffusers import StableDiffusionPipeline

    kwargs: dict[str, Any] = dict(safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                                  local_files_only=True, dtype=dtype)
    try:
        if model.kind == "single_file":
            pipe = StableDiffusionPipeline.from_single_file(str(model.path), config=str(model.config), **kwargs)
        else:
            pipe = StableDiffusionPipeline.from_pretrained(str(model.path), use_safetensors=True, **kwargs)
    except (OSError, ValueError, KeyError) as exc:
        raise _load_failed(model, exc) from exc
    return {name: getattr(pipe, name) for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler")}


def load_controlnet(model: ResolvedModel, dtype: Any = None) -> Any:
    """One ControlNet (a diffusers ``ControlNetModel``)."""
    from diffusers import ControlNetModel

    try:
        if model.kind == "single_file":
            return ControlNetModel.from_single_file(str(model.path), config=str(model.config),
                                                    local_files_only=True, dtype=dtype)
        return ControlNetModel.from_pretrained(str(model.path), use_safetensors=True, local_files_only=True,
                                               dtype=dtype)
    except (OSError, ValueError, KeyError) as exc:
        raise _load_failed(model, exc) from exc


def architecture(model: Any) -> str:
    """A loaded diffusers model's architecture: its config as canonical JSON, without the bookkeeping
    entries (``_name_or_path`` and the like) that differ between copies of one architecture."""
    return json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}, sort_keys=True, default=str)


def fingerprint(path: str | Path, cache: dict | None = None) -> str:
    """SHA-256 of a weights file, or of a folder's ``.safetensors`` files (names and hashes, sorted).

    Weights are gigabytes: ``cache`` (keyed by path, size and modification time) keeps a session from
    hashing the same file twice.
    """
    import hashlib

    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    outer = hashlib.sha256()
    for file in files:
        stat = file.stat()
        key = (str(file.resolve()), stat.st_size, stat.st_mtime_ns)
        digest = cache.get(key) if cache is not None else None
        if digest is None:
            inner = hashlib.sha256()
            with file.open("rb") as f:
                while chunk := f.read(1 << 24):
                    inner.update(chunk)
            digest = inner.hexdigest()
            if cache is not None:
                cache[key] = digest
        if len(files) == 1 and file == path:
            return digest
        outer.update(f"{file.relative_to(path)}:{digest}\n".encode())
    return outer.hexdigest()


# ------------------------------------------------------------------------------------------ helpers


def _unsafe(role: str, name: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"{name} ({ROLE_NAMES[role]}) is a pickle checkpoint; loading one can run code hidden in the file, so "
        "only .safetensors are accepted. Download the .safetensors version or convert it once with a "
        "trusted tool.")


def _check_folder(role: str, folder: Path) -> None:
    """A diffusers folder must hold safetensors weights; one with only pickle weights is refused."""
    marker = "model_index.json" if role == "base" else "config.json"
    if not (folder / marker).exists():
        raise ModelMissingError(f"{folder} is not a diffusers {ROLE_NAMES[role]} folder (no {marker}); choose the "
                                f"folder that holds it, or a .safetensors file: {where_to_set(role)}.")
    if not any(folder.rglob("*.safetensors")):
        pickles = [p for p in folder.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
        if pickles:
            raise _unsafe(role, f"{folder.name}/{pickles[0].relative_to(folder)}")
        raise ModelMissingError(f"{folder} ({ROLE_NAMES[role]}) holds no .safetensors weights.")


def _cached_repo(role: str, repo_id: str, what: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # noqa: BLE001 - any hub error here means "not in the local cache"
        raise ModelMissingError(
            f"{what.capitalize()} of the {ROLE_NAMES[role]}, {repo_id!r}, is not in the local Hugging Face cache. "
            f"Install {ROLE_SUGGESTIONS[role]} (download it once with huggingface-cli, or copy it from an "
            f"offline pack), or choose a local folder: {where_to_set(role)}.") from None


def _load_failed(model: ResolvedModel, exc: Exception) -> ModelMissingError:
    return ModelMissingError(f"The {ROLE_NAMES[model.role]} at {model.path} could not be loaded "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); check it is "
                             "a Stable Diffusion 1.5 model of that role.")
