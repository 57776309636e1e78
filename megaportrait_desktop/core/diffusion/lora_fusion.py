"""The identity LoRA folded into the base weights, at any scale, and taken out again exactly.

The stock path runs the LoRA as peft adapters: ``W·x + s·B(A·x)`` with the scale ``s`` a Python
attribute of each layer. A CUDA graph or a compiled step cannot follow a Python attribute, but both
read the weights from memory on every call. So the fast path writes ``W₀ + s·ΔW`` into each adapted
layer's weight in place, and the same graph serves every scale. ``ΔW`` is what peft computes for
the layer at scale 1 (``B·A·alpha/rank``), so both paths read the LoRA file the same way; ``W₀`` is
kept, so :meth:`FusedLora.restore` gives back the exact base weights (adding and subtracting ``ΔW``
in half precision would drift run after run).

Once folded, the peft layers are no longer needed: the caller unloads them, so the modules the fast
path compiled keep the same structure with a LoRA, without one, and after a training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(eq=False)
class _Target:
    weight: torch.Tensor  # a base layer's weight, written in place
    base: torch.Tensor    # a copy of it
    delta: torch.Tensor   # the LoRA's change of it at scale 1


class FusedLora:
    """Adapter ``adapter`` of every peft LoRA layer in ``models``, read once, foldable into the weights."""

    def __init__(self, models: list[Any], adapter: str) -> None:
        from peft.tuners.lora import LoraLayer

        self.scale: float | None = None
        self._targets: list[_Target] = []
        self._touched: set[int] = set()
        with torch.no_grad():
            for i, model in enumerate(models):
                for module in model.modules():
                    if not isinstance(module, LoraLayer) or adapter not in module.lora_A:
                        continue
                    if module.use_dora.get(adapter, False):
                        raise ValueError("DoRA adapters cannot be folded into the weights")
                    module.set_scale(adapter, 1.0)  # the unit delta: alpha/rank, as peft reads the file
                    weight = module.get_base_layer().weight
                    delta = module.get_delta_weight(adapter).to(weight.dtype)
                    self._targets.append(_Target(weight, weight.detach().clone(), delta))
                    self._touched.add(i)

    def __len__(self) -> int:
        return len(self._targets)

    def touches(self, index: int) -> bool:
        """Whether the adapter changes any weight of ``models[index]``."""
        return index in self._touched

    @torch.no_grad()
    def apply(self, scale: float) -> None:
        """Write ``W₀ + scale·ΔW`` into every adapted weight (a no-op when that scale is applied)."""
        if scale == self.scale:
            return
        for t in self._targets:
            if scale == 0.0:
                t.weight.copy_(t.base)
            else:
                torch.add(t.base, t.delta, alpha=scale, out=t.weight)
        self.scale = scale

    @torch.no_grad()
    def restore(self) -> None:
        """The exact base weights back (for the stock path, or before another LoRA)."""
        if self.scale is None:
            return
        for t in self._targets:
            t.weight.copy_(t.base)
        self.scale = None
