"""The diffusion benchmark script runs: tiny models on the CPU (slow), SD 1.5-shaped ones on CUDA (gpu)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_diffusion.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_diffusion", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_smoke_on_cpu(capsys) -> None:
    assert _bench().main(["--tiny", "--device", "cpu", "--train-steps", "5", "--steps", "4", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "train-identity:" in out and "shading" in out and "it/s" in out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_benchmark_sd15_shapes_on_cuda(capsys) -> None:
    assert _bench().main(["--train-steps", "20", "--steps", "10", "--runs", "1"]) == 0
    out = capsys.readouterr().out
    assert "peak GPU memory" in out and "unet 859.5" in out


@pytest.mark.slow
def test_speed_benchmark_smoke_on_cpu(capsys) -> None:
    spec = importlib.util.spec_from_file_location("bench_speed", SCRIPT.parent / "bench_speed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--tiny", "--device", "cpu", "--train-steps", "4", "--steps", "4", "--runs", "1",
                        "--sections", "stock,graphs,run,low-memory,training"]) == 0
    out = capsys.readouterr().out
    assert "| whole pipeline, fast (graphs only) |" in out and "identity training" in out
