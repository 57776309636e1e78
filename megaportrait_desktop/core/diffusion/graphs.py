"""CUDA graphs over the denoising step: one capture per input signature, replayed every step after.

Stock diffusers launches the UNet and ControlNets op by op from Python, about two thousand kernels a
step, and at 512 px the GPU waits on those launches most of the time. A CUDA graph records the whole
step once and replays it with a single launch. It reads its inputs from fixed buffers and writes its
output to a fixed buffer, so a caller copies each step's tensors in (:meth:`StepGraph.set`) and reads
the output before the next replay.

All graphs of one :class:`GraphCache` share one memory pool. The stages replay their graphs one at a
time on one stream and keep every graph's inputs and outputs alive, so only dead intermediates are
shared. On other devices (CPU, MPS) and when graphs are off, the step runs eagerly, with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch

#: Eager calls before a capture: cuDNN picks its algorithms, cuBLAS makes its workspace, and a
#: compiled function compiles, none of which may happen during a capture.
WARMUP_CALLS = 2


@dataclass(eq=False)
class StepGraph:
    """A captured step: its input buffers by name, its output, and the graph (``None`` when eager)."""

    fn: Callable[..., torch.Tensor]
    inputs: dict[str, Any]
    output: torch.Tensor | None = None
    graph: Any = None
    #: Seconds the capture took, warm-up calls included (compiling, when the step is compiled).
    capture_seconds: float = 0.0

    def set(self, **values: Any) -> None:
        """Copy new values into the input buffers (tensors in place; lists of tensors element-wise)."""
        for name, value in values.items():
            buffer = self.inputs[name]
            if isinstance(buffer, list):
                for b, v in zip(buffer, value, strict=True):
                    _copy(b, v)
            else:
                _copy(buffer, value)

    def __call__(self) -> torch.Tensor:
        """Run the step on the current inputs; the output buffer is overwritten by the next call."""
        if self.graph is None:
            return self.fn(**self.inputs)
        self.graph.replay()
        return self.output


class GraphCache:
    """Step graphs by signature (stage kind, ControlNets, shapes, dtype), captured on first use."""

    def __init__(self, device: torch.device, enabled: bool = True) -> None:
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self._graphs: dict[Hashable, StepGraph] = {}
        self._pool = torch.cuda.graph_pool_handle() if self.enabled else None

    def __len__(self) -> int:
        return len(self._graphs)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._graphs

    def get(self, key: Hashable, fn: Callable[..., torch.Tensor], inputs: dict[str, Any]) -> StepGraph:
        """The step for ``key``, captured over copies of ``inputs`` the first time it is asked for.

        ``inputs`` are keyword arguments of ``fn``: tensors, or lists of tensors; they are copied into
        the graph's own buffers, so the caller's tensors may be freed afterwards.
        """
        step = self._graphs.get(key)
        if step is None:
            step = StepGraph(fn, {name: _clone(value) for name, value in inputs.items()})
            if self.enabled:
                self._capture(step)
            self._graphs[key] = step
        return step

    def _capture(self, step: StepGraph) -> None:
        import time

        started = time.perf_counter()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(WARMUP_CALLS):
                step.fn(**step.inputs)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            step.output = step.fn(**step.inputs)
        step.graph = graph
        torch.cuda.synchronize(self.device)
        step.capture_seconds = time.perf_counter() - started


def _clone(value: Any) -> Any:
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


def _copy(buffer: torch.Tensor, value: Any) -> None:
    if value is buffer:
        return
    if isinstance(value, torch.Tensor):
        buffer.copy_(value, non_blocking=True)
    else:
        buffer.fill_(value)
