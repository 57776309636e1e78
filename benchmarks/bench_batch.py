"""Benchmark: a batch (identities × references) through the app's queue, on 1 and on N local GPUs.

The models are SD 1.5-sized with random weights (speed does not depend on the values), saved once as
diffusers folders the way real ones ship; each identity gets a random LoRA of the real shape. The batch
runs the way the app runs it: ``project.batches.create_batch`` queues the jobs in a project,
``core.runner.LocalRunner`` starts one worker process per GPU (pinned with ``CUDA_VISIBLE_DEVICES``;
each loads the models from the folders and runs the fast path, graphs only), and
``project.batch_run.BatchRun`` feeds them and records every output in the project.

For each GPU count: wall time from the queue to the last output recorded, the steady rate (portraits
per hour from the first output to the last), GPU utilisation sampled with ``nvidia-smi``, and the
scaling. ``--classic`` runs the same batch on the classic engine (CPU workers: ``--gpus`` then means
worker processes) as a smoke test of the script. Prints figures; asserts nothing.

    python benchmarks/bench_batch.py --identities 4 --references 8 --gpus 1,2
    python benchmarks/bench_batch.py --classic --identities 2 --references 2 --gpus 1,2   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def photos(root: Path, identities: int, references: int) -> tuple[list[list[Path]], list[Path]]:
    """Identity sets and references cut from the public-domain demo photos (crops, flips, exposure)."""
    from megaportrait_desktop.core.paths import demo_dir

    grace = np.asarray(Image.open(next((demo_dir() / "identity").glob("*.jpg"))).convert("RGB"))
    eileen = np.asarray(Image.open(next((demo_dir() / "reference").iterdir())).convert("RGB"))
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)

    def variant(image: np.ndarray, i: int) -> np.ndarray:
        h, w = image.shape[:2]
        y, x = int(rng.integers(0, h // 12)), int(rng.integers(0, w // 12))
        out = image[y:h - int(rng.integers(0, h // 12)), x:w - int(rng.integers(0, w // 12))]
        out = np.clip(out.astype(np.float32) * rng.uniform(0.85, 1.15), 0, 255).astype(np.uint8)
        return out[:, ::-1] if i % 2 else out

    sets = []
    for i in range(identities):
        source = grace if i % 2 == 0 else eileen
        folder = root / f"client{i}"
        folder.mkdir()
        paths = [folder / f"{j}.png" for j in range(2)]
        for j, path in enumerate(paths):
            Image.fromarray(np.ascontiguousarray(variant(source, i + j))).save(path)
        sets.append(paths)
    refs = []
    for i in range(references):
        path = root / f"reference{i}.png"
        Image.fromarray(np.ascontiguousarray(variant(eileen if i % 2 == 0 else grace, i))).save(path)
        refs.append(path)
    return sets, refs


def save_models(root: Path, shape: str) -> dict[str, Path]:
    """Random models of ``shape`` as diffusers folders; SD 1.5-sized ones built on the GPU (seconds, not a
    minute) and saved in fp16."""
    import torch

    from megaportrait_desktop.core.diffusion import synthetic

    device = "cuda" if shape == "sd15" else "cpu"
    components = synthetic.build(shape, seed=0, tokenizer_dir=root / "tokenizer", device=device)
    if shape == "sd15":
        for module in (components.unet, components.vae, components.text_encoder, *components.controlnets.values()):
            module.to(torch.float16)
    paths = synthetic.save_diffusers(components, root)
    del components
    if device == "cuda":
        torch.cuda.empty_cache()
    return paths


class GpuSampler:
    """``nvidia-smi`` utilisation per GPU, sampled every half second while the batch runs."""

    def __init__(self) -> None:
        self.samples: list[list[int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi"):
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True)
            if out.returncode == 0:
                self.samples.append([int(x) for x in out.stdout.split()])

    def mean(self, gpus: int, skip: float) -> list[float]:
        """Mean utilisation of the first ``gpus`` GPUs, leaving out the first ``skip`` of the samples."""
        kept = self.samples[int(len(self.samples) * skip):]
        return [float(np.mean([s[i] for s in kept])) if kept else float("nan") for i in range(gpus)]


def run_batch(root: Path, sets, refs, settings: dict, workers: int, classic: bool, shape: str) -> dict:
    from megaportrait_desktop.core.runner import LocalRunner
    from megaportrait_desktop.project import Project, import_identity_photos, import_references, queue
    from megaportrait_desktop.project.batch_run import BatchRun
    from megaportrait_desktop.project.batches import create_batch

    project_dir = root / f"project-{workers}"
    with Project.create(project_dir) as project:
        identity_ids = []
        for i, paths in enumerate(sets):
            identity = project.create_identity(f"client {i}")
            import_identity_photos(project, identity, paths)
            if not classic:
                from megaportrait_desktop.core.diffusion import synthetic

                lora = synthetic.save_speed_lora(shape, root / f"lora{i}", seed=10 + i)
                project.set_training(identity, "trained", progress=1.0, lora=lora.read_bytes())
            identity_ids.append(identity)
        reference_ids = [r.item_id for r in import_references(project, refs)]
        new = create_batch(project, identity_ids, reference_ids, settings)
        gpus = shape == "sd15" and not classic
        runner = LocalRunner(devices=[str(i) for i in range(workers)]) if gpus else LocalRunner(processes=workers)
        done_at: list[float] = []
        by_worker: dict[str, int] = {}

        def on_update(update) -> None:
            if update.state == "done":
                done_at.append(time.perf_counter())
                by_worker[update.worker] = by_worker.get(update.worker, 0) + 1
            elif update.state == "failed":
                print(f"  job {update.job_id} failed: {update.message}", flush=True)

        start = time.perf_counter()
        with GpuSampler() as gpu:
            driver = BatchRun(project, runner, on_update)
            summary = driver.run()
        wall = time.perf_counter() - start
        runner.close()
        steady = (len(done_at) - 1) / (done_at[-1] - done_at[0]) * 3600 if len(done_at) > 1 else float("nan")
        result = {"workers": workers, "jobs": new.jobs, "done": summary.done, "failed": summary.failed,
                  "wall_seconds": wall, "first_output_seconds": done_at[0] - start if done_at else None,
                  "portraits_per_hour_wall": summary.done / wall * 3600, "portraits_per_hour_steady": steady,
                  "per_worker": by_worker, "gpu_utilisation": gpu.mean(workers, skip=0.3) if gpu.samples else None,
                  "outputs": queue.summary(project, new.batch_id).done,
                  "record_seconds_median": float(np.median(driver.record_seconds)) if driver.record_seconds else None,
                  "job_seconds_median": float(np.median(driver.durations)) if driver.durations else None}
    print(f"{workers} {'worker' if classic else 'GPU'}(s): {summary.done}/{new.jobs} portraits in {wall:.1f} s "
          f"(first after {result['first_output_seconds']:.1f} s); steady {steady:.0f} portraits/hour, "
          f"{result['portraits_per_hour_wall']:.0f}/hour over the whole wall time; per worker {by_worker}; "
          f"GPU utilisation {result['gpu_utilisation']}; a job {result['job_seconds_median']:.2f} s from start to "
          f"result (median), recording a result {result['record_seconds_median']:.2f} s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=4)
    parser.add_argument("--references", type=int, default=8)
    parser.add_argument("--gpus", default="1,2", help="GPU counts to run the batch on, in turn")
    parser.add_argument("--classic", action="store_true", help="the classic engine on CPU worker processes")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tiny", action="store_true", help="the diffusion engine on tiny models on CPU processes "
                                                            "(a smoke test of the GPU run)")
    parser.add_argument("--json", help="write every figure to this file")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="mp-batch-"))
    os.environ["MEGAPORTRAIT_CONFIG"] = str(root / "config")  # the workers read the same model settings
    os.environ["MEGAPORTRAIT_CACHE"] = str(root / "cache")
    sets, refs = photos(root / "photos", args.identities, args.references)
    from megaportrait_desktop.core.request import RunRequest

    info: dict = {"identities": args.identities, "references": args.references}
    shape = "tiny" if args.tiny else "sd15"
    if args.classic:
        settings = RunRequest(identity=("-",), reference="-", crop_size=256).settings()
    else:
        import torch

        from megaportrait_desktop.core.model_settings import ModelSettings, ModelSpec, save_settings

        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        t = time.perf_counter()
        paths = save_models(root / "models", shape)
        print(f"models saved in {time.perf_counter() - t:.1f} s", flush=True)
        # The fast path with CUDA graphs, not compiled: each worker process would otherwise compile for minutes.
        save_settings(ModelSettings(models={role: ModelSpec(str(p)) for role, p in paths.items()}, compile="off",
                                    fast_path="on", device="auto" if shape == "sd15" else "cpu"))
        settings = RunRequest(identity=("-",), reference="-", engine="diffusion", steps=args.steps,
                              crop_size=512 if shape == "sd15" else 64).settings()
    print(json.dumps(info), flush=True)
    results = [run_batch(root, sets, refs, settings, int(n), args.classic, shape) for n in args.gpus.split(",")]
    if len(results) > 1:
        base = results[0]["portraits_per_hour_steady"]
        for r in results[1:]:
            r["scaling_steady"] = r["portraits_per_hour_steady"] / base
            r["scaling_wall"] = r["portraits_per_hour_wall"] / results[0]["portraits_per_hour_wall"]
            print(f"scaling {results[0]['workers']} → {r['workers']}: {r['scaling_steady']:.2f}× steady, "
                  f"{r['scaling_wall']:.2f}× over the wall time", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"info": info, "runs": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
