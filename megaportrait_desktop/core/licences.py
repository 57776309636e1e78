"""Model licences: what each role's usual model is licensed under, and recorded acceptance.

A model under a restrictive licence (insightface's packs are for non-commercial research only) must be
accepted once before its first use; the acceptance is kept in ``models.json``
(:attr:`ModelSettings.accepted_licences`), so the question is asked once per machine, not per run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from . import installed
from .errors import ModelMissingError
from .model_settings import ModelSettings, load_settings, save_settings


class LicenceNotAcceptedError(ModelMissingError):
    """A model with a restrictive licence was about to be used before the user accepted it.

    A kind of :class:`ModelMissingError`: until accepted the model is not usable, and callers that
    carry on without a missing model (the identity score) carry on the same way.
    """


@dataclass(frozen=True)
class Licence:
    """A model licence: ``requires_acceptance`` is true for terms a user must agree to before first use."""

    id: str
    name: str
    url: str = ""
    requires_acceptance: bool = False
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | str | None) -> Licence:
        if data is None or not isinstance(data, str | dict):
            return UNKNOWN
        if isinstance(data, str):
            return KNOWN.get(data.lower(), replace(UNKNOWN, id=data, name=data))
        known = KNOWN.get(str(data.get("id", "")).lower())
        base = known or UNKNOWN
        return Licence(id=str(data.get("id", base.id)), name=str(data.get("name", base.name)),
                       url=str(data.get("url", base.url)),
                       requires_acceptance=bool(data.get("requires_acceptance", base.requires_acceptance)),
                       summary=str(data.get("summary", base.summary)))


UNKNOWN = Licence("unknown", "unknown licence", summary="Check the model's page for its terms of use.")

#: Licences of the models the app suggests, by lower-case id.
KNOWN: dict[str, Licence] = {lic.id: lic for lic in (
    Licence("creativeml-openrail-m", "CreativeML Open RAIL-M",
            "https://huggingface.co/spaces/CompVis/stable-diffusion-license",
            summary="Commercial use allowed; the licence's use restrictions apply to your outputs."),
    Licence("openrail", "OpenRAIL", "https://huggingface.co/blog/open_rail",
            summary="Commercial use allowed with use-based restrictions."),
    Licence("apache-2.0", "Apache 2.0", "https://www.apache.org/licenses/LICENSE-2.0"),
    Licence("mit", "MIT", "https://opensource.org/license/mit"),
    Licence("insightface-non-commercial", "insightface model licence (non-commercial research only)",
            "https://github.com/deepinsight/insightface#license", requires_acceptance=True,
            summary="The pretrained packs are for non-commercial research purposes only."),
    Licence("openrail++", "CreativeML Open RAIL++-M", "https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0"
            "/blob/main/LICENSE.md", summary="Commercial use allowed; the licence's use restrictions apply "
                                               "(LCM-LoRA for SD 1.5 is published under it)."),
    Licence("cc-by-nc-4.0", "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/",
            requires_acceptance=True, summary="Non-commercial use only."),
    # dlib's ResNet face recogniser and 5-point landmark model: Davis King released them into the public domain
    # (the face-recognition-models package ships them with the CC0 1.0 text as its LICENSE file).
    Licence("cc0-1.0", "Public domain (CC0 1.0)", "https://creativecommons.org/publicdomain/zero/1.0/",
            summary="No restrictions: commercial use allowed. (dlib's 68-point model is not covered: it is "
                    "trained on iBUG 300-W, not for commercial use, and never used or bundled.)"),
)}

#: The licence of each role's suggested model (a pack's manifest says the licence of what it carries).
ROLE_LICENCES: dict[str, Licence] = {
    "base": KNOWN["creativeml-openrail-m"],
    "face_controlnet": KNOWN["openrail"],
    "light_controlnet": KNOWN["openrail"],
    "detail_controlnet": KNOWN["openrail"],
    "inpaint_controlnet": KNOWN["openrail"],
    "speed_lora": KNOWN["openrail++"],
    "identity": KNOWN["cc0-1.0"],
    "insightface": KNOWN["insightface-non-commercial"],
    "annotators": KNOWN["openrail"],
}


def licence_of(role: str, path: Path | None = None, models_dir: Path | None = None) -> Licence:
    """The licence of the model at ``path``: from its pack's manifest when the app installed it, else the role's."""
    record = installed.find(path, models_dir) if path is not None else None
    return Licence.from_json(record.licence) if record and record.licence else ROLE_LICENCES[role]


def is_accepted(role: str, licence: Licence, settings: ModelSettings | None = None) -> bool:
    """Whether ``role``'s model may be used: its licence needs no acceptance, or the user gave it."""
    if not licence.requires_acceptance:
        return True
    settings = settings if settings is not None else load_settings()
    return f"{role}:{licence.id}" in settings.accepted_licences


def accept(role: str, licence: Licence, settings: ModelSettings | None = None, save: bool = True) -> ModelSettings:
    """Record that the user accepted ``licence`` for ``role`` (saved to ``models.json`` unless ``save`` is false)."""
    settings = settings if settings is not None else load_settings()
    key = f"{role}:{licence.id}"
    if key not in settings.accepted_licences:
        settings = replace(settings, accepted_licences=(*settings.accepted_licences, key))
    if save:
        save_settings(settings)
    return settings


def require_accepted(role: str, licence: Licence, settings: ModelSettings | None = None) -> None:
    """Raise :class:`LicenceNotAcceptedError` unless ``role``'s licence is accepted (call before first use).

    Raises
    ------
    LicenceNotAcceptedError
        Naming the licence and how to accept it.
    """
    if not is_accepted(role, licence, settings):
        raise LicenceNotAcceptedError(
            f"The {role} model is under the {licence.name} ({licence.summary or licence.url}). Accept it once in "
            "the app (Models → Model Manager, select the row, Licence…), or with "
            f"'python main.py models accept-licence {role}', before using it.")
