"""The GPU jobs the app queues: a pipeline run (recorded in History) and an identity training.

Each builder returns a plain function ``(on_progress, cancel, cache)`` for :class:`GpuWorker`; it
runs on the worker thread, keeps loaded models in ``cache`` and writes results into the project.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import Cancelled, MegaPortraitError
from ..core.progress import Reporter
from ..core.request import RunRequest
from ..project import Project


def diffusion_engine(cache: dict):
    """The worker's diffusion engine: models stay loaded between runs (imports torch, on the worker)."""
    from ..core.pipeline import diffusion_engine as new_engine

    if "diffusion" not in cache:
        cache["diffusion"] = new_engine()
    return cache["diffusion"]


def run_job(project: Project, request: RunRequest, identity_id: int, reference_id: int, until: str | None):
    def job(on_progress, cancel, cache):
        from ..core.pipeline import run

        engine = diffusion_engine(cache) if request.engine == "diffusion" else None
        result = run(request, on_progress=on_progress, cancel=cancel, until=until, diffusion=engine)
        output_id = 0
        if result.final is not None:
            cancel.check()  # cancelled at the last moment: nothing is recorded
            output_id = project.record_run(result, identity_id, reference_id, models=result.models)
        return result, output_id

    return job


def training_job(project: Project, identity_id: int):
    """Train the identity's LoRA on its photos; the LoRA file and the state go into the project.

    The identity's saved training parameters (rank, steps, learning rate, ...) apply; the rest
    take :class:`TrainingParams`' defaults.
    """

    def job(on_progress, cancel, cache):
        from ..core.diffusion.training import TrainingParams

        identity = project.identity(identity_id)
        photos = [str(project.path_of(p.path)) for p in project.identity_photos(identity_id)]
        params = TrainingParams(token=identity.trigger_token, **_saved_params(identity.training_params))
        # Checkpoints for resuming live beside the content-addressed files, per identity.
        work = project.root / "training" / f"identity_{identity_id}"
        project.set_training(identity_id, "training", progress=0.0)
        try:
            result = diffusion_engine(cache).train_identity(photos, work, params, Reporter(on_progress, cancel))
        except Cancelled:
            project.set_training(identity_id, "cancelled")
            raise
        except (MegaPortraitError, Exception):
            project.set_training(identity_id, "failed")
            raise
        project.update_identity(identity_id, training_params={k: getattr(params, k) for k in TRAINING_KEYS})
        project.set_training(identity_id, "trained", progress=1.0, lora=Path(result.lora_path).read_bytes())
        return ("trained", identity_id)

    return job


TRAINING_KEYS = ("rank", "steps", "learning_rate", "batch_size", "seed", "resolution", "train_text_encoder")


def _saved_params(saved: dict) -> dict:
    return {k: saved[k] for k in TRAINING_KEYS if k in saved}
