"""The user's model and device choices: ``models.json`` in the config folder.

Which weights play each role of the diffusion pipeline (:data:`ROLES`), the device and precision,
offline mode, accepted licences and the GPU fast-path switches. Model resolution and loading
(:mod:`.diffusion.models`), the model manager (:mod:`.modelstore`) and licences (:mod:`.licences`) all
read these settings; this module depends on none of them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .atomic_write import write_bytes_atomically
from .errors import RequestError
from .paths import config_dir

SETTINGS_FILE = "models.json"

#: The model roles of the diffusion pipeline, in the order a run needs them.
ROLES = ("base", "face_controlnet", "light_controlnet", "detail_controlnet", "inpaint_controlnet")

#: Models that adapt the base rather than sit beside it: the speed LoRA that makes draft quality possible.
ADAPTER_ROLES = ("speed_lora",)

#: Values of the fast-path settings (``ModelSettings.fast_path``, ``low_memory``, ``compile``).
SWITCHES = ("auto", "on", "off")

ROLE_NAMES = {
    "base": "base model (Stable Diffusion 1.5)",
    "face_controlnet": "face-geometry ControlNet",
    "light_controlnet": "light ControlNet",
    "detail_controlnet": "detail ControlNet",
    "inpaint_controlnet": "inpaint ControlNet",
    "speed_lora": "speed LoRA (draft quality)",
}

#: What to install for each role (shown when it is missing).
ROLE_SUGGESTIONS = {
    "base": "a Stable Diffusion 1.5 checkpoint, e.g. 'stable-diffusion-v1-5/stable-diffusion-v1-5' "
            "or a photoreal SD 1.5 fine-tune as one .safetensors file",
    "face_controlnet": "an SD 1.5 face ControlNet, e.g. 'CrispyDingo/ControlNetMediaPipeFace' or "
                       "'lllyasviel/control_v11p_sd15_lineart'",
    "light_controlnet": "the SD 1.5 tile ControlNet 'lllyasviel/control_v11f1e_sd15_tile'",
    "detail_controlnet": "an SD 1.5 line ControlNet, e.g. 'lllyasviel/control_v11p_sd15_lineart' "
                         "or 'lllyasviel/control_v11p_sd15_canny'",
    "inpaint_controlnet": "the SD 1.5 inpaint ControlNet 'lllyasviel/control_v11p_sd15_inpaint'",
    "speed_lora": "a few-step LoRA for SD 1.5: LCM-LoRA 'latent-consistency/lcm-lora-sdv1-5' (the LCM sampler), "
                  "a Hyper-SD 'Hyper-SD15-4steps-lora' file (LCM sampler) or 'h1t/TCD-SD15-LoRA' (the TCD sampler)",
}

#: Where the user chooses models in the app (there is no Settings menu: the Models menu has the manager).
MODEL_MANAGER = "Models → Model Manager"


def where_to_set(role: str) -> str:
    """How to choose ``role``'s model, in the app and on the command line (for messages that say what to do)."""
    name = ROLE_NAMES.get(role, role)
    if role not in ROLES:  # the speed LoRA: no download button and no per-run flag
        return (f"in the app, {MODEL_MANAGER} (select the {name}, then Choose checkpoint… or Install pack…); on the "
                f"command line, 'python main.py models set {role} SOURCE'")
    flag = "--" + role.replace("_", "-")
    return (f"in the app, {MODEL_MANAGER} (select the {name}, then Download, Choose checkpoint… or Install "
            f"pack…); on the command line, 'python main.py models set {role} SOURCE', or {flag} SOURCE for one run")


#: The repos each role's suggested model comes from (and whose hyper-parameters the shipped configs copy).
DEFAULT_CONFIGS = {
    "base": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "face_controlnet": "lllyasviel/control_v11p_sd15_lineart",
    "light_controlnet": "lllyasviel/control_v11f1e_sd15_tile",
    "detail_controlnet": "lllyasviel/control_v11p_sd15_lineart",
    "inpaint_controlnet": "lllyasviel/control_v11p_sd15_inpaint",
    "speed_lora": "latent-consistency/lcm-lora-sdv1-5",
}


@dataclass(frozen=True)
class ModelSpec:
    """Where one role's weights are: a folder, a ``.safetensors`` file or a cached repo id.

    ``config`` is only read for single files: the diffusers config (folder or cached repo id) that
    says the checkpoint's shape.
    """

    source: str
    config: str | None = None


@dataclass
class ModelSettings:
    """The user's model and device choices (``models.json`` in the config folder).

    ``device``: ``"auto"``, ``"cuda"``, ``"mps"`` or ``"cpu"``; ``precision``: ``"auto"``, ``"fp16"``,
    ``"bf16"`` or ``"fp32"``; ``offload``: ``"auto"`` (on for GPUs of 8 GB or less), ``"on"``, ``"off"``.
    ``offline``: when true, nothing in the app opens a network connection (downloads are refused).
    ``accepted_licences``: the model roles or licence ids whose restrictive licence the user accepted.
    ``fast_path`` (``"auto"``/``"on"``: on CUDA; ``"off"``: stock diffusers calls), ``low_memory``
    and ``compile`` (``"auto"``, ``"on"``, ``"off"``): the GPU fast path, see :mod:`.fast`.
    """

    models: dict[str, ModelSpec] = field(default_factory=dict)
    device: str = "auto"
    precision: str = "auto"
    offload: str = "auto"
    offline: bool = False
    accepted_licences: tuple[str, ...] = ()
    fast_path: str = "auto"
    low_memory: str = "auto"
    compile: str = "auto"

    def with_model(self, role: str, spec: ModelSpec | str | None) -> ModelSettings:
        """A copy with ``role`` set to ``spec`` (``None`` removes it)."""
        _check_role(role)
        models = dict(self.models)
        if spec is None:
            models.pop(role, None)
        else:
            models[role] = spec if isinstance(spec, ModelSpec) else ModelSpec(str(spec))
        return replace(self, models=models)

    def to_json(self) -> str:
        data = {"models": {role: asdict(spec) for role, spec in self.models.items()}, "device": self.device,
                "precision": self.precision, "offload": self.offload, "offline": self.offline,
                "accepted_licences": list(self.accepted_licences), "fast_path": self.fast_path,
                "low_memory": self.low_memory, "compile": self.compile}
        return json.dumps(data, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelSettings:
        """Parse ``models.json``; any field of the wrong type is a :class:`RequestError` naming it."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise RequestError(f"The model settings file is malformed ({exc}); fix or delete it.") from None

        def bad(what: str) -> RequestError:
            return RequestError(f"The model settings file is malformed ({what}); fix or delete it.")

        if not isinstance(data, dict) or not isinstance(data.get("models", {}), dict):
            raise bad("not an object with a 'models' object")
        models = {}
        for role, spec in data.get("models", {}).items():
            if isinstance(spec, str):
                spec = {"source": spec}
            if not (isinstance(spec, dict) and set(spec) <= {"source", "config"} and isinstance(spec.get("source"), str)
                    and isinstance(spec.get("config"), str | None)):
                raise bad(f"the model for {str(role)[:40]!r} is not a source path with an optional config")
            _check_role(role)
            models[role] = ModelSpec(spec["source"], spec.get("config"))
        texts = {key: data.get(key, "auto") for key in ("device", "precision", "offload", "fast_path", "low_memory",
                                                         "compile")}
        for key, value in texts.items():
            if not isinstance(value, str):
                raise bad(f"'{key}' is not text")
        offline = data.get("offline", False)
        accepted = data.get("accepted_licences", [])
        if not isinstance(offline, bool):
            raise bad("'offline' is not true or false")
        if not isinstance(accepted, list) or not all(isinstance(x, str) for x in accepted):
            raise bad("'accepted_licences' is not a list of names")
        return cls(models=models, offline=offline, accepted_licences=tuple(accepted), **texts)


def settings_path() -> Path:
    """``models.json`` in the user's config folder."""
    return config_dir() / SETTINGS_FILE


def load_settings(path: str | Path | None = None) -> ModelSettings:
    """The saved model settings (defaults when the file does not exist yet)."""
    path = Path(path) if path else settings_path()
    if not path.exists():
        return ModelSettings()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"The model settings file {path} cannot be read ({exc}); fix or delete it.") from None
    return ModelSettings.from_json(text)


def save_settings(settings: ModelSettings, path: str | Path | None = None) -> Path:
    """Write the model settings (atomically: a crash never leaves half a file)."""
    path = Path(path) if path else settings_path()
    write_bytes_atomically(path, settings.to_json().encode("utf-8"))
    return path


def _check_role(role: str) -> None:
    if role not in ROLES + ADAPTER_ROLES:
        raise RequestError(f"Unknown model role {role!r}; the roles are {', '.join(ROLES + ADAPTER_ROLES)}.")
