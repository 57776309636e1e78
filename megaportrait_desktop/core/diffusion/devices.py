"""Device and precision: CUDA, Apple MPS or CPU; fp16/bf16 on GPUs; offload on small GPUs; the fast path.

Out-of-memory errors are turned into :class:`OutOfMemory` with a message naming the setting to
change, after freeing the cache, so the app keeps running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from ..errors import ErrorKind, MegaPortraitError, RequestError
from ..model_settings import SWITCHES
from .fast import FastOptions

DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp16", "bf16", "fp32")
#: Where the device is chosen (named in messages; the app has no device menu).
DEVICE_SETTING = "--device on the command line, or \"device\" in models.json in the config folder"
#: GPUs with this much memory or less get model CPU offload under ``offload="auto"``.
OFFLOAD_AT_OR_BELOW_GB = 8.0
#: GPUs with this much memory or less run the fast path in low-memory mode under ``low_memory="auto"``.
LOW_MEMORY_AT_OR_BELOW_GB = 12.0
#: Whether ``compile="auto"`` compiles the UNet, ControlNets and VAE: a compiled step runs in about half
#: the time of a captured eager one (README, GPU speed); the first start pays the compile once.
COMPILE_BY_DEFAULT = True


class OutOfMemory(MegaPortraitError):
    """The device ran out of memory; the message says which setting to change."""

    kind = ErrorKind.MEMORY


@dataclass(frozen=True)
class DeviceChoice:
    """Where and how a run computes."""

    device: torch.device
    dtype: torch.dtype
    offload: bool
    #: The fast path's options (CUDA without offload); ``None``: stock diffusers calls.
    fast: FastOptions | None = None

    @property
    def is_gpu(self) -> bool:
        return self.device.type in ("cuda", "mps")

    def describe(self) -> str:
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else self.device.type
        text = f"{name}, {str(self.dtype).removeprefix('torch.')}{', CPU offload' if self.offload else ''}"
        if self.fast is not None:
            extras = [x for x, on in (("compiled", self.fast.compile), ("low memory", self.fast.low_memory)) if on]
            text += f", fast path{' (' + ', '.join(extras) + ')' if extras else ''}"
        return text


def choose_device(device: str = "auto", precision: str = "auto", offload: str = "auto", fast_path: str = "auto",
                  low_memory: str = "auto", compile: str = "auto") -> DeviceChoice:
    """Pick the device (``auto``: CUDA, then MPS, then CPU), the dtype, whether to offload, and the fast path.

    ``precision="auto"`` is fp16 on GPUs (bf16 where CUDA supports it is an explicit choice: it is safer
    against overflow but slower on older cards) and fp32 on the CPU, where half precision is slow.
    The fast path (:mod:`.fast`) runs on CUDA unless ``fast_path="off"`` or the models are offloaded;
    ``low_memory="auto"`` turns its low-memory mode on for GPUs of 12 GB or less.
    """
    if device not in DEVICES:
        raise RequestError(f"Unknown device {device!r}; choose one of {', '.join(DEVICES)}.")
    if precision not in PRECISIONS:
        raise RequestError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
    for name, value in (("fast path", fast_path), ("low-memory", low_memory), ("compile", compile)):
        if value not in SWITCHES:
            raise RequestError(f"Unknown {name} setting {value!r}; choose one of {', '.join(SWITCHES)}.")
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise RequestError(f"No CUDA GPU is available; set the device to auto or cpu ({DEVICE_SETTING}).")
    elif device == "mps" and not has_mps:
        raise RequestError(f"Apple MPS is not available; set the device to auto or cpu ({DEVICE_SETTING}).")
    dev = torch.device(device)
    if precision == "auto":
        dtype = torch.float16 if dev.type in ("cuda", "mps") else torch.float32
    else:
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]
    if offload == "auto":
        use_offload = dev.type == "cuda" and gpu_memory_gb(dev) <= OFFLOAD_AT_OR_BELOW_GB
    else:
        use_offload = offload == "on" and dev.type == "cuda"
    fast = None
    if dev.type == "cuda" and not use_offload and fast_path != "off":
        small = gpu_memory_gb(dev) <= LOW_MEMORY_AT_OR_BELOW_GB
        fast = FastOptions(compile=compile == "on" or (compile == "auto" and COMPILE_BY_DEFAULT),
                           low_memory=low_memory == "on" or (low_memory == "auto" and small))
    return DeviceChoice(dev, dtype, use_offload, fast)


def gpu_memory_gb(device: torch.device) -> float:
    """Total memory of a CUDA device in GB (0 for other devices)."""
    if device.type != "cuda":
        return 0.0
    return torch.cuda.get_device_properties(device).total_memory / 1e9


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A seeded generator; on MPS the CPU's (MPS generators are not reproducible across runs)."""
    return torch.Generator("cpu" if device.type == "mps" else device).manual_seed(int(seed))


@contextlib.contextmanager
def out_of_memory_as_message(choice: DeviceChoice, what: str) -> Iterator[None]:
    """Turn an out-of-memory error inside the block into :class:`OutOfMemory`, after freeing the cache."""
    try:
        yield
    except torch.OutOfMemoryError:
        empty_cache(choice.device)
        hint = ("turn on CPU offload (\"offload\": \"on\" in models.json)" if not choice.offload
                else "lower the working size or the batch size")
        if choice.dtype == torch.float32 and choice.is_gpu:
            hint = "set the precision to fp16 (\"precision\" in models.json), or " + hint
        raise OutOfMemory(f"The GPU ran out of memory while {what}; {hint}, or close other GPU programs.") from None
    except RuntimeError as exc:
        # MPS reports exhaustion as a plain RuntimeError.
        if "out of memory" not in str(exc).lower():
            raise
        empty_cache(choice.device)
        raise OutOfMemory(f"The device ran out of memory while {what}; lower the working size or set the "
                          f"device to cpu ({DEVICE_SETTING}).") from None


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def autocast(choice: DeviceChoice, cache_enabled: bool = True):
    """Mixed precision for training in the run's half precision; a no-op context in fp32.

    ``cache_enabled=False`` inside a CUDA graph capture: cached casts would be freed when the
    context exits, under the graph's feet.
    """
    if choice.dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(choice.device.type, dtype=choice.dtype, cache_enabled=cache_enabled)


@contextlib.contextmanager
def deterministic(choice: DeviceChoice) -> Iterator[None]:
    """Deterministic kernels inside the block (same seed, same device → same weights), then as before.

    On CUDA, cuDNN's autotuned and atomics-based kernels make backward passes differ run to run;
    this asks PyTorch for deterministic ones (warning, not failing, where an op has none). cuDNN's
    autotuning stays off: on an H100 it cost a first training 28 s (every VAE and UNet convolution
    shape timed once per process) and the graphed loop ran no faster for it (21.8 it/s without,
    21.4–22.9 with).
    """
    if choice.device.type != "cuda":
        yield
        return
    import os

    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])
