"""LoRAs folded into the base weights (the identity LoRA, and the speed LoRA in draft mode), each at its
own scale, and taken out again exactly.

The stock path runs the LoRA as peft adapters: ``W·x + s·B(A·x)`` with the scale ``s`` a Python
attribute of each layer. A CUDA graph or a compiled step cannot follow a Python attribute, but both
read the weights from memory on every call. So the fast path writes ``W₀ + s·ΔW`` into each adapted
layer's weight in place, and the same graph serves every scale. ``ΔW`` is what peft computes for
the layer at scale 1 (``B·A·alpha/rank``), so both paths read the LoRA file the same way; ``W₀`` is
kept, so :meth:`FusedLora.restore` gives back the exact base weights (adding and subtracting ``ΔW``
in half precision would drift run after run). Several adapters fold together: ``W₀ + Σ sᵢ·ΔWᵢ``.

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
    deltas: dict[str, torch.Tensor]  # each adapter's change of it at scale 1


class FusedLora:
    """The adapters ``adapters`` of every peft LoRA layer in ``models``, read once, foldable into the weights."""

    def __init__(self, models: list[Any], adapters: str | list[str]) -> None:
        from peft.tuners.lora import LoraLayer

        names = [adapters] if isinstance(adapters, str) else list(adapters)
        #: The scales folded in now, by adapter (``None``: the base weights).
        self.scale: dict[str, float] | None = None
        self._targets: list[_Target] = []
        self._touched: dict[str, set[int]] = {name: set() for name in names}
        with torch.no_grad():
            for i, model in enumerate(models):
                for module in model.modules():
                    present = [n for n in names if isinstance(module, LoraLayer) and n in module.lora_A]
                    if not present:
                        continue
                    weight = module.get_base_layer().weight
                    deltas = {}
                    for name in present:
                        if module.use_dora.get(name, False):
                            raise ValueError("DoRA adapters cannot be folded into the weights")
                        module.set_scale(name, 1.0)  # the unit delta: alpha/rank, as peft reads the file
                        deltas[name] = module.get_delta_weight(name).to(weight.dtype)
                        self._touched[name].add(i)
                    self._targets.append(_Target(weight, weight.detach().clone(), deltas))

    def __len__(self) -> int:
        return len(self._targets)

    def touches(self, index: int, adapter: str | None = None) -> bool:
        """Whether the adapter (any of them) changes any weight of ``models[index]``."""
        return any(index in touched for name, touched in self._touched.items() if adapter in (None, name))

    @torch.no_grad()
    def apply(self, scales: float | dict[str, float]) -> None:
        """Write ``W₀ + Σ sᵢ·ΔWᵢ`` into every adapted weight (a no-op when those scales are applied).

        A single number is the scale of the only adapter; an adapter not named is folded at 0.
        """
        if not isinstance(scales, dict):
            scales = dict.fromkeys(self._touched, float(scales))
        scales = {name: float(scales.get(name, 0.0)) for name in self._touched}
        if scales == self.scale:
            return
        # A few multi-tensor kernels rather than one or two per layer: a draft folds between its stages, and
        # launching hundreds of small kernels kept the CPU busy for milliseconds each time.
        # ``copy`` then ``add(alpha=s)`` is ``torch.add(base, delta, alpha=s)``: the same rounding.
        _copy([t.weight for t in self._targets], [t.base for t in self._targets])
        for name, scale in scales.items():
            folded = [t for t in self._targets if name in t.deltas]
            if scale != 0.0 and folded:
                torch._foreach_add_([t.weight for t in folded], [t.deltas[name] for t in folded], alpha=scale)
        self.scale = scales

    @torch.no_grad()
    def restore(self) -> None:
        """The exact base weights back (for the stock path, or before another LoRA)."""
        if self.scale is None:
            return
        _copy([t.weight for t in self._targets], [t.base for t in self._targets])
        self.scale = None


def _copy(weights: list[torch.Tensor], bases: list[torch.Tensor]) -> None:
    if weights:  # (the multi-tensor copy refuses an empty list)
        torch._foreach_copy_(weights, bases)
