"""The run request: one frozen dataclass holding every parameter of a run.

Everything that changes the output is in here, so recalling an output's settings is loading its
stored request. It round-trips through JSON; unknown keys from a newer version are refused, missing
keys take their defaults (so requests stored by older versions still load).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from .align import DEFAULT_CROP_SIZE
from .errors import RequestError

ENGINES = ("classic", "diffusion")
QUALITIES = ("final", "draft")
DRAFT_SCHEDULERS = ("lcm", "tcd")
REQUEST_VERSION = 1
#: The request's fields that are settings rather than inputs: what a batch applies to every pair, and
#: what the app's session keeps while the selection changes.
SETTINGS_FIELDS = ("engine", "crop_size", "seed", "steps", "identity_params", "shading", "mask_params", "harmonize",
                   "diffusion")


@dataclass(frozen=True)
class IdentityParams:
    """The identity/shading trade-off of the pair (the A and B sliders).

    ``a_strength`` and ``b_strength`` are identity weights in ``[0, 1]``: A is reference-like (low),
    B is source-like (high). The classic engine blends the aligned source photo into the reference
    crop by these weights; the diffusion engine maps them to LoRA scale and img2img strength.
    """

    a_strength: float = 0.0
    b_strength: float = 1.0
    #: Which identity photo stands in for B (classic engine); ``None`` = the closest head pose.
    source_index: int | None = None


@dataclass(frozen=True)
class ShadingParams:
    """Frequency separation (cut-offs are Gaussian sigmas in crop pixels at the working size)."""

    light_cutoff: float = 10.0
    hf_cutoff: float = 10.0
    #: 1 = all shading from A (the reference); 0 = all from B.
    light_weight: float = 1.0
    #: Gain on B's detail.
    detail_weight: float = 1.0


@dataclass(frozen=True)
class MaskParams:
    """The automatic mask (ignored when the request carries a user mask). Crop pixels."""

    grow: float = -4.0
    feather: float = 6.0


@dataclass(frozen=True)
class HarmonizeParams:
    """Harmonisation: colour matching and Poisson blending over the face and seam band."""

    #: 0 = the pasted face as is; 1 = full colour match and Poisson blend.
    strength: float = 1.0
    #: Width of the band around the mask edge that is harmonised, in crop pixels.
    seam_width: float = 10.0


@dataclass(frozen=True)
class DiffusionParams:
    """Settings of the diffusion engine (ignored by the classic engine).

    The pair: A and B are each set by a LoRA scale, an img2img denoising strength and the
    face-geometry ControlNet weight. Left at ``None`` they follow the identity weight ``w`` of
    :class:`IdentityParams` (``a_strength`` / ``b_strength``): LoRA scale ``w``, denoise
    ``denoise_min + w · (denoise_max − denoise_min)``, ControlNet weight ``face_control_weight``.

    Model sources (``base``, ``face_controlnet``, …) override the settings file for this run:
    a diffusers folder, a ``.safetensors`` file or a cached Hugging Face repo id.
    """

    #: The identity LoRA (``identity_lora.safetensors`` from ``train-identity``); ``None`` = none.
    lora: str | None = None
    prompt: str = "a photo of sks person"
    negative_prompt: str = "blurry, deformed, distorted face, cartoon, painting, lowres"
    guidance_scale: float = 5.0
    #: Face-geometry control image: ``mediapipe_face``, ``canny``, ``lineart_standard`` (no weights),
    #: or ``lineart`` / ``softedge`` (need the annotator weights in the models folder).
    face_control: str = "mediapipe_face"
    face_control_weight: float = 1.0
    denoise_min: float = 0.3
    denoise_max: float = 0.75
    a_lora_scale: float | None = None
    a_denoise: float | None = None
    a_control: float | None = None
    b_lora_scale: float | None = None
    b_denoise: float | None = None
    b_control: float | None = None
    #: Shading Net: ControlNet weights on the light map and the HF-map, its denoise and LoRA scale.
    light_control_weight: float = 1.0
    detail_control_weight: float = 0.8
    shading_denoise: float = 0.5
    shading_lora_scale: float = 0.5
    #: Harmonization Net: denoise of the inpaint pass, inpaint ControlNet weight, the tile (light)
    #: ControlNet's weight that keeps the content (0 = inpaint alone), and how much of the inpainted
    #: result is kept on the face (the seam band keeps all of it).
    harmonize_denoise: float = 0.5
    inpaint_control_weight: float = 1.0
    harmonize_tile_weight: float = 0.5
    face_harmonize: float = 0.2
    #: A latent preview every this many denoising steps (0 = none).
    preview_every: int = 5
    base: str | None = None
    face_controlnet: str | None = None
    light_controlnet: str | None = None
    detail_controlnet: str | None = None
    inpaint_controlnet: str | None = None
    #: ``None`` = the settings file; else ``auto``, ``cuda``, ``mps`` or ``cpu``.
    device: str | None = None
    #: The SHA-256 of each model (by role, and ``lora``) this request must run with: a run records the
    #: ones it used, so a recalled request refuses different files instead of quietly making another image.
    model_sha256: dict[str, str] | None = None
    #: ``"final"``: the scheduled ``steps`` with UniPC and ``guidance_scale``. ``"draft"``: each stage runs
    #: ``draft_steps`` denoising steps with the speed LoRA (LCM-LoRA, Hyper-SD or TCD for SD 1.5) and the
    #: sampler it was distilled for, at ``draft_guidance`` (1 = no classifier-free guidance, half the work):
    #: a quick look, and the live preview under the sliders (:mod:`.diffusion.quality`).
    quality: str = "final"
    draft_steps: int = 4
    draft_guidance: float = 1.0
    #: ``"lcm"`` (LCM-LoRA, Hyper-SD) or ``"tcd"`` (TCD-LoRA).
    draft_scheduler: str = "lcm"
    #: The speed LoRA (``None``: the ``speed_lora`` role of the model settings).
    speed_lora: str | None = None

    def model_overrides(self) -> dict[str, str | None]:
        return {role: getattr(self, role) for role in ("base", "face_controlnet", "light_controlnet",
                                                        "detail_controlnet", "inpaint_controlnet")}


@dataclass(frozen=True)
class RunRequest:
    """Every input and parameter of one run.

    Attributes
    ----------
    identity:
        Paths of the identity set's source photos.
    reference:
        Path of the reference portrait.
    engine:
        ``"classic"`` (CPU, no weights) or ``"diffusion"``.
    face_index:
        Which face of the reference (largest first); ``None`` = the largest.
    mask:
        Path of a user-edited mask PNG at the reference's resolution; ``None`` = the automatic mask.
    """

    identity: tuple[str, ...]
    reference: str
    engine: str = "classic"
    face_index: int | None = None
    mask: str | None = None
    crop_size: int = DEFAULT_CROP_SIZE
    seed: int = 0
    steps: int = 30
    identity_params: IdentityParams = field(default_factory=IdentityParams)
    shading: ShadingParams = field(default_factory=ShadingParams)
    mask_params: MaskParams = field(default_factory=MaskParams)
    harmonize: HarmonizeParams = field(default_factory=HarmonizeParams)
    diffusion: DiffusionParams = field(default_factory=DiffusionParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "identity", tuple(str(p) for p in self.identity))
        object.__setattr__(self, "reference", str(self.reference))
        if self.mask is not None:
            object.__setattr__(self, "mask", str(self.mask))
        self.validate()

    def validate(self) -> None:
        """Raise :class:`RequestError` for a value no stage can use."""
        if self.engine not in ENGINES:
            raise RequestError(f"Unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}.")
        if not self.identity:
            raise RequestError("The identity set is empty; add photos of the client first.")
        if not 64 <= self.crop_size <= 2048 or self.crop_size % 8:
            raise RequestError(f"Working size {self.crop_size} must be a multiple of 8 between 64 and 2048.")
        if self.face_index is not None and self.face_index < 0:
            raise RequestError("The face index cannot be negative.")
        for name, value in (("A identity strength", self.identity_params.a_strength),
                            ("B identity strength", self.identity_params.b_strength),
                            ("light weight", self.shading.light_weight),
                            ("harmonisation strength", self.harmonize.strength)):
            if not 0.0 <= value <= 1.0:
                raise RequestError(f"The {name} must be between 0 and 1 (got {value}).")
        if self.shading.light_cutoff < 0 or self.shading.hf_cutoff < 0:
            raise RequestError("Cut-offs cannot be negative.")
        if self.steps < 1:
            raise RequestError("Steps must be at least 1.")
        d = self.diffusion
        if d.quality not in QUALITIES:
            raise RequestError(f"Unknown quality {d.quality!r}; choose one of {', '.join(QUALITIES)}.")
        if d.draft_scheduler not in DRAFT_SCHEDULERS:
            raise RequestError(f"Unknown draft sampler {d.draft_scheduler!r}; choose one of "
                               f"{', '.join(DRAFT_SCHEDULERS)}.")
        if not 1 <= d.draft_steps <= 16:
            raise RequestError(f"Draft steps must be between 1 and 16 (got {d.draft_steps}).")
        for name in ("denoise_min", "denoise_max", "a_denoise", "b_denoise", "shading_denoise", "harmonize_denoise",
                     "face_harmonize"):
            value = getattr(d, name)
            if value is not None and not 0.0 <= value <= 1.0:
                raise RequestError(f"The diffusion setting {name} must be between 0 and 1 (got {value}).")

    def replace(self, **changes: Any) -> RunRequest:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["identity"] = list(self.identity)
        return {"version": REQUEST_VERSION, **data}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def settings(self) -> dict[str, Any]:
        """The settings (no inputs) as JSON-ready data; :meth:`with_settings` applies them to other inputs."""
        data = self.to_dict()
        return {name: data[name] for name in SETTINGS_FIELDS}

    @classmethod
    def with_settings(cls, settings: dict[str, Any], *, identity: tuple[str, ...] | list[str], reference: str,
                      face_index: int | None = None, mask: str | None = None) -> RunRequest:
        """A request for these inputs with ``settings`` (as :meth:`settings` gives them; missing ones default)."""
        unknown = set(settings) - set(SETTINGS_FIELDS)
        if unknown:
            raise RequestError(f"Not run settings: {', '.join(sorted(unknown))}.")
        return cls.from_dict({**settings, "identity": list(identity), "reference": reference,
                              "face_index": face_index, "mask": mask})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRequest:
        data = dict(data)
        version = data.pop("version", REQUEST_VERSION)
        if not isinstance(version, int) or version > REQUEST_VERSION:
            raise RequestError(f"This request was written by a newer version (format {version}); update the app.")
        return _build(cls, data)

    @classmethod
    def from_json(cls, text: str) -> RunRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestError(f"The run settings are not valid JSON ({exc.msg}, line {exc.lineno}).") from None
        if not isinstance(data, dict):
            raise RequestError("The run settings must be a JSON object.")
        return cls.from_dict(data)


def _build(cls: type, data: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise RequestError(f"Unknown run setting(s): {', '.join(sorted(unknown))}.")
    kwargs = {}
    for name, value in data.items():
        sub = _nested_type(cls, name)
        if sub is not None:
            if not isinstance(value, dict):
                raise RequestError(f"The run setting {name!r} must be an object.")
            value = _build(sub, value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RequestError(f"Malformed run settings: {exc}.") from None


def _nested_type(cls: type, name: str) -> type | None:
    nested = {"identity_params": IdentityParams, "shading": ShadingParams, "mask_params": MaskParams,
              "harmonize": HarmonizeParams, "diffusion": DiffusionParams}
    return nested.get(name) if cls is RunRequest else None
