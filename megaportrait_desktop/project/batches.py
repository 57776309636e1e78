"""Batches: identity sets × references with one settings request, expanded into jobs in the project.

A batch's jobs are plain run requests (paths inside the project, made portable) keyed by a hash of
the request, so identical work is recognisable; on the diffusion engine an identity without a LoRA
gets a training job first, and its runs wait for it.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass

from ..core.request import RunRequest
from .errors import ProjectError
from .project import Project


@dataclass(frozen=True)
class Batch:
    id: int
    name: str
    settings: dict
    paused: bool
    created: float


@dataclass(frozen=True)
class NewBatch:
    """What :func:`create_batch` queued, and what it left out (with the reason)."""

    batch_id: int
    jobs: int
    trainings: int
    skipped: tuple[str, ...] = ()


def create_batch(project: Project, identity_ids: list[int], reference_ids: list[int], settings: dict,
                 name: str | None = None) -> NewBatch:
    """Queue every identity × reference pair with ``settings`` (``RunRequest.settings()``); returns what was queued.

    Raises
    ------
    ProjectError
        When nothing can be queued (no identity with photos, no reference).
    """
    if not identity_ids or not reference_ids:
        raise ProjectError("A batch needs at least one identity and one reference.")
    RunRequest.with_settings(settings, identity=["check"], reference="check")  # bad settings fail before anything
    diffusion = settings.get("engine") == "diffusion"
    skipped: list[str] = []
    plans = []
    for identity_id in identity_ids:
        identity = project.identity(identity_id)
        photos = project.identity_photos(identity_id)
        if not photos:
            skipped.append(f"{identity.name}: no photos yet.")
            continue
        plans.append((identity, [str(project.path_of(p.path)) for p in photos]))
    if not plans:
        raise ProjectError("None of the chosen identities has photos; add photos of the clients first.")
    references = [project.reference(r) for r in reference_ids]
    now = time.time()
    jobs = trainings = 0
    with project.db.write() as tx:
        batch_id = int(tx.execute("INSERT INTO batches (name, settings, created) VALUES (?, ?, ?)",
                                  (name or _default_name(len(plans), len(references)), json.dumps(settings), now))
                       .lastrowid)
        position = _last_position(tx) + 1
        for identity, photos in plans:
            train_job = None
            if diffusion and not identity.lora_path:
                train_job = _insert(tx, "train", {"identity_id": identity.id}, identity.id, None, batch_id, position,
                                    None, None, now)
                position += 1
                trainings += 1
            for ref in references:
                request = _request(project, settings, photos, ref, identity, train_job is None)
                payload = {"request": request, "identity_id": identity.id, "reference_id": ref.id, "until": None,
                           "lora_from_identity": train_job is not None}
                _insert(tx, "generate", payload, identity.id, ref.id, batch_id, position, request_key(request),
                        train_job, now)
                position += 1
                jobs += 1
    return NewBatch(batch_id, jobs, trainings, tuple(skipped))


def batches(project: Project) -> list[Batch]:
    return [Batch(r["id"], r["name"], json.loads(r["settings"]), bool(r["paused"]), r["created"])
            for r in project.db.query("SELECT * FROM batches ORDER BY id")]


def batch(project: Project, batch_id: int) -> Batch:
    for item in batches(project):
        if item.id == batch_id:
            return item
    raise ProjectError(f"Batch {batch_id} does not exist in this project.")


def request_key(portable_request: dict) -> str:
    """The job's content key: the hash of its request (inputs are content-addressed paths in the project)."""
    return hashlib.sha256(json.dumps(portable_request, sort_keys=True).encode()).hexdigest()


def _request(project: Project, settings: dict, photos: list[str], ref, identity, with_lora: bool) -> dict:
    mask = project.current_mask(ref.id)
    user_mask = str(project.path_of(mask.path)) if mask is not None and mask.source == "user" else None
    request = RunRequest.with_settings(settings, identity=photos, reference=str(project.path_of(ref.path)),
                                       face_index=ref.chosen_face, mask=user_mask)
    if request.engine == "diffusion":
        from dataclasses import replace

        lora = str(project.path_of(identity.lora_path)) if with_lora and identity.lora_path else None
        request = request.replace(diffusion=replace(request.diffusion, lora=lora,
                                                    prompt=f"a photo of {identity.trigger_token} person"))
    return project.portable_request(request.to_dict())


def _insert(tx, kind: str, payload: dict, identity_id: int, reference_id: int | None, batch_id: int,
            position: float, key: str | None, after_job: int | None, now: float) -> int:
    cur = tx.execute("""INSERT INTO jobs (kind, state, payload, identity_id, reference_id, batch_id, position, key,
                                          after_job, created, updated)
                        VALUES (?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                     (kind, json.dumps(payload), identity_id, reference_id, batch_id, position, key, after_job, now,
                      now))
    return int(cur.lastrowid)


def _last_position(tx) -> float:
    return float(tx.execute("SELECT COALESCE(MAX(position), 0) FROM jobs").fetchone()[0])


def _default_name(identities: int, references: int) -> str:
    return f"{identities} × {references} · {time.strftime('%d %b %H:%M')}"
