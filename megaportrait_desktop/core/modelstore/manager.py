"""The state of every model role: installed, missing or damaged, with size, source, hash and licence.

This is what the model manager dialog and ``python main.py models list`` show. Models are found where
they are (a folder, a single file, the standard Hugging Face cache shared with other tools, the
models folder); nothing is copied or downloaded here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import installed
from ..diffusion.models import UnsafeModelError, fingerprint, resolve
from ..errors import ModelMissingError, RequestError
from ..licences import ROLE_LICENCES, Licence, is_accepted, licence_of
from ..model_settings import (
    ADAPTER_ROLES,
    DEFAULT_CONFIGS,
    ROLE_NAMES,
    ROLES,
    ModelSettings,
    ModelSpec,
    load_settings,
    save_settings,
    settings_path,
)
from ..paths import models_dir as default_models_dir
from . import safetensors_header

#: Roles the manager shows: the diffusion roles, the identity scorer installed with the app (dlib), then the
#: insightface pack and the annotator weights.
MANAGED_ROLES = (*ROLES, *ADAPTER_ROLES, "identity", "insightface", "annotators")
TITLES = {**ROLE_NAMES, "identity": "identity score (dlib ResNet, 5-point landmarks)",
          "insightface": "insightface buffalo_l (face detection, optional ArcFace score)",
          "annotators": "annotator weights (lineart, softedge)"}
#: The files each fixed-location role needs, relative to its folder.
REQUIRED_FILES = {"insightface": ("det_10g.onnx", "w600k_r50.onnx"),
                  "annotators": ("sk_model.pth", "sk_model2.pth", "ControlNetHED.pth")}

INSTALLED, MISSING, DAMAGED = "installed", "missing", "damaged"

log = logging.getLogger("megaportrait")


@dataclass(frozen=True)
class RoleState:
    """One role as the manager shows it.

    ``state`` is ``"installed"``, ``"missing"`` or ``"damaged"``; ``message`` says why when it is not
    installed. ``size`` is bytes on disk, ``sha256`` the model's hash (a file's SHA-256, or the
    :func:`fingerprint` of a folder) when known, ``in_hf_cache`` whether it is used from the Hugging Face
    cache, and ``cached_default`` the suggested repo id when that is in the cache but not chosen yet.
    """

    role: str
    title: str
    state: str
    source: str = ""
    path: Path | None = None
    kind: str = ""
    size: int = 0
    sha256: str | None = None
    licence: Licence = field(default_factory=lambda: ROLE_LICENCES["base"])
    licence_accepted: bool = True
    message: str = ""
    in_hf_cache: bool = False
    cached_default: str | None = None

    def to_json(self) -> dict:
        return {"role": self.role, "title": self.title, "state": self.state, "source": self.source,
                "path": str(self.path) if self.path else None, "kind": self.kind, "size": self.size,
                "sha256": self.sha256, "licence": self.licence.to_json(), "licence_accepted": self.licence_accepted,
                "message": self.message, "in_hf_cache": self.in_hf_cache, "cached_default": self.cached_default}


def model_states(settings: ModelSettings | None = None, models_dir: Path | None = None, hashes: bool = False,
                 cache: dict | None = None) -> list[RoleState]:
    """The state of every role in :data:`MANAGED_ROLES`.

    Parameters
    ----------
    settings:
        The model settings (default: ``models.json``).
    models_dir:
        The models folder (default: the app's).
    hashes:
        Hash every file (slow for gigabytes) to find damage a size check cannot see and to show hashes
        of models the app did not install; otherwise hashes come from the install record.
    cache:
        A :func:`fingerprint` cache kept across calls.
    """
    problem = ""
    if settings is None:
        try:
            settings = load_settings()
        except Exception as exc:  # noqa: BLE001 - any settings file: the list still shows every role
            settings, problem = ModelSettings(), f"The model settings cannot be used ({exc}); fix or delete " \
                                                  f"{settings_path()}. "
    states = []
    for role in MANAGED_ROLES:
        state = _guarded_state(role, settings, models_dir, hashes, cache)
        states.append(replace(state, message=problem + state.message) if problem else state)
    return states


def _guarded_state(role: str, settings: ModelSettings, models_dir: Path | None, hashes: bool,
                   cache: dict | None) -> RoleState:
    """:func:`role_state`, but whatever lies on disk the manager gets a row: damaged, with the reason."""
    try:
        return role_state(role, settings, models_dir, hashes, cache)
    except Exception as exc:  # noqa: BLE001 - a file no check foresaw must not empty the whole manager
        log.warning("model state of %s", role, exc_info=True)
        spec = settings.models.get(role) if role in ROLES + ADAPTER_ROLES else None
        return RoleState(role=role, title=TITLES[role], state=DAMAGED, source=spec.source if spec else "",
                         licence=ROLE_LICENCES[role],
                         message=f"Could not be checked ({type(exc).__name__}: {exc}); reinstall it or choose "
                                 "another model.")


def role_state(role: str, settings: ModelSettings | None = None, models_dir: Path | None = None,
               hashes: bool = False, cache: dict | None = None) -> RoleState:
    """The state of one role (see :func:`model_states`)."""
    if role not in MANAGED_ROLES:
        raise RequestError(f"Unknown model role {role!r}; the roles are {', '.join(MANAGED_ROLES)}.")
    settings = settings if settings is not None else load_settings()
    root = models_dir or default_models_dir()
    if role == "identity":
        return _identity_state(settings, hashes, cache)
    if role in REQUIRED_FILES:
        return _fixed_state(role, root, settings, hashes, cache)
    return _diffusion_state(role, settings, root, hashes, cache)


def set_model(role: str, source: str, config: str | None = None, settings_file: Path | None = None) -> RoleState:
    """Choose ``role``'s model (a folder, a ``.safetensors`` file or a cached repo id) after checking it resolves.

    Raises
    ------
    ModelMissingError, UnsafeModelError
        When it does not resolve; the settings are then unchanged.
    """
    if role not in ROLES + ADAPTER_ROLES:
        raise RequestError(f"Only the diffusion roles ({', '.join(ROLES + ADAPTER_ROLES)}) can be set; {role!r} is "
                           "installed from a pack.")
    settings = load_settings(settings_file)
    source = str(Path(source).expanduser().resolve()) if Path(source).expanduser().exists() else source
    spec = ModelSpec(source, config)
    resolve(role, spec)
    settings = settings.with_model(role, spec)
    state = role_state(role, settings)
    if state.state != INSTALLED:  # a damaged model is never saved as the choice
        raise ModelMissingError(f"{source} is not usable as the {ROLE_NAMES[role]}: {state.message} The setting "
                                "was not changed.")
    save_settings(settings, settings_file)
    return state


def hf_cache_dir() -> Path:
    """The standard Hugging Face hub cache (``HF_HUB_CACHE``/``HF_HOME``), shared with other tools."""
    import huggingface_hub.constants

    return Path(huggingface_hub.constants.HF_HUB_CACHE)


def cached_repo(repo_id: str) -> Path | None:
    """The local snapshot of ``repo_id`` in the Hugging Face cache, or ``None`` (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True, cache_dir=hf_cache_dir()))
    except Exception:  # noqa: BLE001 - any hub error here means "not in the local cache"
        return None


# ------------------------------------------------------------------------------------------ helpers


def _diffusion_state(role: str, settings: ModelSettings, root: Path, hashes: bool, cache: dict | None) -> RoleState:
    spec = settings.models.get(role)
    base = dict(role=role, title=TITLES[role], source=spec.source if spec else "")
    try:
        resolved = resolve(role, spec)
    except UnsafeModelError as exc:
        return RoleState(**base, state=DAMAGED, message=str(exc), licence=ROLE_LICENCES[role])
    except ModelMissingError as exc:
        exists = spec is not None and Path(spec.source).expanduser().exists()
        cached = None
        if spec is None:
            cached = DEFAULT_CONFIGS[role] if cached_repo(DEFAULT_CONFIGS[role]) is not None else None
        return RoleState(**base, state=DAMAGED if exists else MISSING, message=str(exc),
                         licence=ROLE_LICENCES[role], cached_default=cached)
    path = resolved.path
    licence = licence_of(role, path, root)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    in_cache = _is_relative(path, hf_cache_dir())
    problem = _damage(path, root, files, hashes)
    digest = None
    if problem is None:
        digest = fingerprint(path, cache) if hashes else _recorded_hash(path, root)
    return RoleState(**base, state=DAMAGED if problem else INSTALLED, path=path, kind=resolved.kind,
                     size=sum(p.stat().st_size for p in files), sha256=digest, licence=licence,
                     licence_accepted=is_accepted(role, licence, settings), message=problem or "",
                     in_hf_cache=in_cache)


def _fixed_state(role: str, root: Path, settings: ModelSettings, hashes: bool, cache: dict | None) -> RoleState:
    from ..diffusion.control import annotators_dir
    from ..face import buffalo_l_dir

    folder = buffalo_l_dir(root) if role == "insightface" else annotators_dir(root)
    licence = licence_of(role, folder, root)
    base = dict(role=role, title=TITLES[role], source=str(folder), path=folder, kind="folder", licence=licence,
                licence_accepted=is_accepted(role, licence, settings))
    present = [name for name in REQUIRED_FILES[role] if (folder / name).is_file()]
    if not present:
        return RoleState(**base, state=MISSING, message=f"Not installed in {folder}: install a model pack that "
                         f"carries it ({', '.join(REQUIRED_FILES[role])}).")
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in files)
    absent = [name for name in REQUIRED_FILES[role] if name not in present]
    problem = _damage(folder, root, files, hashes)
    if absent and problem is None:
        problem = f"{', '.join(absent)} missing from {folder}; reinstall its pack."
    digest = None
    if problem is None:
        digest = _recorded_hash(folder, root) or (_folder_hash(folder, files, cache) if hashes else None)
    return RoleState(**base, state=DAMAGED if problem else INSTALLED, size=size, sha256=digest,
                     message=problem or "")


def _identity_state(settings: ModelSettings, hashes: bool, cache: dict | None) -> RoleState:
    """dlib's recogniser and 5-point model: installed with the app (a Python package, or the installer's bundle)."""
    from ..dlib_recogniser import MODEL_FILES, model_dir

    licence = ROLE_LICENCES["identity"]
    base = dict(role="identity", title=TITLES["identity"], kind="folder", licence=licence,
                licence_accepted=is_accepted("identity", licence, settings))
    try:
        folder = model_dir()
    except ModelMissingError as exc:
        return RoleState(**base, state=MISSING, message=str(exc))
    files = [folder / name for name in MODEL_FILES]
    absent = [f.name for f in files if not f.is_file()]
    source = "face-recognition-models 0.3.0 (installed with the app)"
    if absent:
        return RoleState(**base, state=DAMAGED if len(absent) < len(files) else MISSING, source=source, path=folder,
                         message=f"{', '.join(absent)} missing from {folder}; reinstall MegaPortrait.")
    return RoleState(**base, state=INSTALLED, source=source, path=folder, size=sum(f.stat().st_size for f in files),
                     sha256=_folder_hash(folder, files, cache) if hashes else None)


def _folder_hash(folder: Path, files: list[Path], cache: dict | None) -> str:
    import hashlib

    outer = hashlib.sha256()
    for file in files:
        outer.update(f"{file.relative_to(folder).as_posix()}:{fingerprint(file, cache)}\n".encode())
    return outer.hexdigest()


def _damage(path: Path, root: Path, files: list[Path], hashes: bool) -> str | None:
    """Why the model at ``path`` is damaged, or ``None``: checked against its install record, else by format."""
    record = installed.find(path, root)
    if record is not None:
        for f in record.files:
            file = root / f.path
            if not file.is_file():
                return f"{f.path} is missing; reinstall the model's pack."
            if file.stat().st_size != f.size:
                return f"{f.path} has {file.stat().st_size} bytes instead of {f.size}; reinstall the model's pack."
            if hashes and fingerprint(file) != f.sha256:
                return f"{f.path} does not match its SHA-256; reinstall the model's pack."
    for file in files:
        if file.suffix.lower() == ".safetensors" and (why := _safetensors_problem(file)):
            return f"{file.name} is damaged ({why}); download or install it again."
    return None


def _safetensors_problem(file: Path) -> str | None:
    """The whole header parses and the tensors it lists fit the file's size exactly (see :mod:`.safetensors_header`)."""
    return safetensors_header.file_problem(file)


def _recorded_hash(path: Path, root: Path) -> str | None:
    """The hash from the install record, in :func:`fingerprint`'s form (no file is read)."""
    import hashlib

    record = installed.find(path, root)
    if record is None:
        return None
    if record.kind == "single_file" and len(record.files) == 1:
        return record.files[0].sha256
    outer = hashlib.sha256()
    prefix = record.path + "/"
    # Sorted as Paths, like fingerprint()'s rglob, so both give the same hash.
    weights = [f for f in record.files if f.path.endswith(".safetensors")] or list(record.files)
    weights.sort(key=lambda f: Path(f.path))
    for f in weights:
        outer.update(f"{f.path.removeprefix(prefix)}:{f.sha256}\n".encode())
    return outer.hexdigest()


def _is_relative(path: Path, parent: Path) -> bool:
    try:
        path.resolve().relative_to(parent.resolve())
        return True
    except (ValueError, OSError):
        return False
