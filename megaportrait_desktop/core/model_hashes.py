"""The models a machine holds, by role and SHA-256, and whether they are the ones a request pins.

A cluster never ships models: every node uses its own models folder, installed from the studio's
offline model pack, and a job runs on a node only when that node's models are the ones the job's
request names by hash (``DiffusionParams.model_sha256``). These are the hashes the diffusion engine
records (:func:`.diffusion.models.fingerprint`): a model the app installed from a pack is hashed from
its install record at once; any other model is read once (gigabytes: seconds) and kept in ``cache``.
The classic engine needs no models, so its requests pin none and every node may run them.
"""

from __future__ import annotations

from typing import Any

from .model_settings import ADAPTER_ROLES, ROLE_NAMES, ROLES, ModelSettings, ModelSpec, load_settings

#: The roles a request may pin, besides its identity LoRA (``"lora"``), which travels with the job.
MODEL_ROLES = ROLES + ADAPTER_ROLES


def held_models(settings: ModelSettings | None = None, cache: dict | None = None) -> dict[str, str | None]:
    """The SHA-256 of the model this machine's settings give each role; ``None`` where it has none usable."""
    from .modelstore.manager import INSTALLED, role_state

    settings = settings if settings is not None else load_settings()
    held: dict[str, str | None] = {}
    for role in MODEL_ROLES:
        if role not in settings.models:
            held[role] = None
            continue
        state = role_state(role, settings)
        held[role] = None if state.state != INSTALLED or state.path is None else \
            state.sha256 or _fingerprint(state.path, cache)
    return held


def request_pins(diffusion: dict[str, Any], settings: ModelSettings | None = None,
                 cache: dict | None = None) -> dict[str, str]:
    """The hashes of the models this machine would run a diffusion request with (its ``diffusion`` dict):
    the request's own model sources where it names them, else the settings'. Roles it has none for stay
    unpinned (a node then uses its own); the speed LoRA only for a draft."""
    from .diffusion.models import resolve

    settings = settings if settings is not None else load_settings()
    roles = ROLES + (ADAPTER_ROLES if diffusion.get("quality") == "draft" else ())
    pins = {}
    for role in roles:
        source = diffusion.get(role)
        spec = ModelSpec(source) if source else settings.models.get(role)
        if spec is None:
            continue
        try:
            pins[role] = _fingerprint(resolve(role, spec).path, cache)
        except Exception:  # noqa: BLE001 - a model this machine cannot use is simply not pinned here
            continue
    return pins


def disagreement(pins: dict[str, str] | None, held: dict[str, str | None], node: str) -> str | None:
    """Why ``node`` (holding ``held``) must not run a request pinning ``pins``; ``None`` when it may."""
    for role, wanted in sorted((pins or {}).items()):
        if role not in MODEL_ROLES:
            continue  # the identity LoRA travels with the job
        have = held.get(role)
        name = ROLE_NAMES.get(role, role)
        if have is None:
            return (f"Node {node} refuses this job: it has no {name} (the job needs SHA-256 {wanted[:12]}…). Install "
                    f"the studio's model pack on {node}, or take it out of the cluster.")
        if have != wanted:
            return (f"Node {node} refuses this job: its {name} is not the job's (SHA-256 {have[:12]}… there, "
                    f"{wanted[:12]}… wanted). Install the studio's model pack on {node}, or take it out of the "
                    "cluster.")
    return None


def _fingerprint(path, cache: dict | None) -> str:
    from .diffusion.models import fingerprint

    return fingerprint(path, cache)
