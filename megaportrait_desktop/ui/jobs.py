"""The GPU jobs the app queues: a pipeline run (recorded in History) and an identity training.

Each job is written to the project's jobs table when it is queued, started and finished, so a run
killed with the app is listed as interrupted when the project opens again. Each builder returns a
plain function ``(on_progress, cancel, cache)`` for :class:`GpuWorker`; it runs on the worker
thread, keeps loaded models in ``cache`` and writes results into the project.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import Cancelled, MegaPortraitError
from ..core.progress import Reporter
from ..core.request import RunRequest
from ..project import Project, ProjectError

log = logging.getLogger("megaportrait.ui")

@dataclass(frozen=True)
class RunOutcome:
    """A finished run: its result, the History row it was recorded as (0 for a run stopped early), and
    its full-size images ready to show (converted on the worker, not on the GUI thread)."""

    result: object  # core.pipeline.RunResult (imported lazily: it pulls in the image stack)
    output_id: int
    images: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingOutcome:
    """A finished training: the identity now has this LoRA file in the project."""

    identity_id: int
    lora_path: str


#: Progress steps of saving a run (the final's encoding reports in bands of rows).
SAVE_STEPS = 100

TRAINING_KEYS = ("rank", "steps", "learning_rate", "batch_size", "seed", "resolution", "train_text_encoder")


def diffusion_engine(cache: dict):
    """The worker's diffusion engine: models stay loaded between runs (imports torch, on the worker)."""
    from ..core.pipeline import diffusion_engine as new_engine

    if "diffusion" not in cache:
        cache["diffusion"] = new_engine()
    return cache["diffusion"]


def queue_run(project: Project, request: RunRequest, identity_id: int, reference_id: int,
              until: str | None) -> int:
    """Write a run into the project's jobs table as queued; returns the job's id."""
    payload = {"request": project.portable_request(request.to_dict()), "identity_id": identity_id,
               "reference_id": reference_id, "until": until}
    return project.add_job("generate", payload, identity_id)


def queue_training(project: Project, identity_id: int) -> int:
    return project.add_job("train", {"identity_id": identity_id}, identity_id)


def request_of(project: Project, job_payload: dict) -> RunRequest:
    """The run request a queued job was made with (paths in the project made absolute again)."""
    return RunRequest.from_dict(project.resolve_request(job_payload["request"]))


def run_job(project: Project, job_id: int, request: RunRequest, identity_id: int, reference_id: int,
            until: str | None, scenes=None):
    """The run as a worker job; ``scenes``: a ``core.inputs.SceneCache`` shared with the live preview."""
    def job(on_progress, cancel, cache):
        from ..core.pipeline import run

        with _job_state(project, job_id):
            engine = diffusion_engine(cache) if request.engine == "diffusion" else None
            result = run(request, on_progress=on_progress, cancel=cancel, until=until, diffusion=engine,
                         scenes=scenes)
            # Saving is part of the run the user waits for: it reports progress and can be cancelled until
            # the output's rows are written (then nothing is recorded).
            reporter = Reporter(on_progress, cancel)
            output_id = 0
            if result.final is not None:
                reporter("save", 0, SAVE_STEPS, "Saving to History")
                output_id = project.record_run(
                    result, identity_id, reference_id, models=result.models, job_id=job_id,  # done in the same commit
                    on_progress=lambda f: reporter("save", round(f * 0.9 * SAVE_STEPS), SAVE_STEPS,
                                                   "Saving to History"))
            else:
                project.update_job(job_id, state="done", progress=1.0)
            with contextlib.suppress(Cancelled):  # recorded: a late cancel no longer takes it back
                reporter("save", round(0.9 * SAVE_STEPS), SAVE_STEPS, "Showing the result")
            return RunOutcome(result, output_id, full_size_images(result))

    return job


def full_size_images(result) -> dict:
    """The run's full-resolution images as QImages (made here, on the worker thread)."""
    from ..core.stages import Stage
    from .images import to_qimage

    images = {Stage.PASTED: to_qimage(result.stages[Stage.PASTED])} if Stage.PASTED in result.stages else {}
    if result.final is not None:
        images[Stage.FINAL] = to_qimage(result.final.pixels)
    return images


def training_job(project: Project, job_id: int, identity_id: int):
    """Train the identity's LoRA on its photos; the LoRA file and the state go into the project.

    The identity's saved training parameters (rank, steps, learning rate, ...) apply; the rest take
    :class:`TrainingParams`' defaults. A failed or cancelled training leaves the identity as it was
    (trainable; its earlier LoRA, if any, still in use), with the reason in the job.
    """

    def job(on_progress, cancel, cache):
        from ..core.diffusion.training import TrainingParams

        identity = project.identity(identity_id)
        before = "trained" if identity.lora_path else "untrained"
        with _job_state(project, job_id):
            photos = [str(project.path_of(p.path)) for p in project.identity_photos(identity_id)]
            params = TrainingParams(token=identity.trigger_token, **_saved_params(identity.training_params))
            # Checkpoints for resuming live beside the content-addressed files, per identity.
            work = project.root / "training" / f"identity_{identity_id}"
            project.set_training(identity_id, "training", progress=0.0)
            try:
                result = diffusion_engine(cache).train_identity(photos, work, params, Reporter(on_progress, cancel))
            except Cancelled:
                project.set_training(identity_id, "cancelled" if before == "untrained" else before)
                raise
            except BaseException:
                project.set_training(identity_id, "failed" if before == "untrained" else before)
                raise
            project.update_identity(identity_id, training_params={k: getattr(params, k) for k in TRAINING_KEYS})
            project.set_training(identity_id, "trained", progress=1.0, lora=Path(result.lora_path).read_bytes())
            project.update_job(job_id, state="done", progress=1.0)
        return TrainingOutcome(identity_id, project.identity(identity_id).lora_path or "")

    return job


@contextlib.contextmanager
def _job_state(project: Project, job_id: int):
    """Running while the body runs; cancelled or failed (with the reason) when it raises."""
    project.start_job(job_id)
    try:
        yield
    except Cancelled:
        _finish(project, job_id, "cancelled", None)
        raise
    except BaseException as exc:
        reason = str(exc) if isinstance(exc, MegaPortraitError) else f"{type(exc).__name__}: {exc}"
        _finish(project, job_id, "failed", reason)
        raise


def _finish(project: Project, job_id: int, state: str, error: str | None) -> None:
    # The job's own error is what the user must see: a failure to note it only goes to the log.
    try:
        project.update_job(job_id, state=state, error=error)
    except (ProjectError, OSError) as exc:
        log.warning("could not mark job %s %s: %s", job_id, state, exc)


def _saved_params(saved: dict) -> dict:
    return {k: saved[k] for k in TRAINING_KEYS if k in saved}
