"""The identity LoRA folded into the base weights, at any scale, and taken out again exactly.

The stock path runs the LoRA as peft adapters: ``W·x + s·B(A·x)`` with the scale ``s`` a Python
attribute of each layer. A CUDA graph or a compiled step cannot follow a Python attribute, but both
read the weights from memory on every call. So the fast path writes ``W₀ + s·ΔW`` into each adapted
layer's weight in place (peft computes ``ΔW``, alpha and rank included) and switches the adapters
off; the same graph then serves every scale. The layers' scaling is set as diffusers' ``set_adapters``
sets it, so both paths read the LoRA the same way. ``W₀`` is kept, so :meth:`FusedLora.restore` gives back
the exact base weights (adding and subtracting ``ΔW`` in half precision would drift run after run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass(eq=False)
class _Target:
    layer: Any           # the peft LoRA layer
    weight: torch.Tensor  # its base layer's weight, written in place
    base: torch.Tensor    # a copy of the base weight


class FusedLora:
    """The adapter ``adapter`` of every peft LoRA layer in ``models``, foldable into their weights."""

    def __init__(self, models: list[Any], adapter: str) -> None:
        from peft.tuners.lora import LoraLayer

        self.adapter = adapter
        self.scale: float | None = None
        self._targets: list[_Target] = []
        self._layers: list[Any] = []
        for model in models:
            for module in model.modules():
                if not isinstance(module, LoraLayer):
                    continue
                self._layers.append(module)
                if adapter in module.lora_A:
                    if module.use_dora.get(adapter, False):
                        raise ValueError("DoRA adapters cannot be folded into the weights")
                    weight = module.get_base_layer().weight
                    self._targets.append(_Target(module, weight, weight.detach().clone()))

    def __len__(self) -> int:
        return len(self._targets)

    @torch.no_grad()
    def apply(self, scale: float) -> None:
        """Write ``W₀ + scale·ΔW`` into every adapted weight and switch the adapters off.

        A no-op when that scale is already applied.
        """
        self._enable_adapters(False)
        if scale == self.scale:
            return
        for t in self._targets:
            # What diffusers' set_adapters does for the stock path: the layer's scaling becomes
            # scale·alpha/rank, and peft's delta carries it.
            t.layer.set_scale(self.adapter, scale)
            if scale == 0.0:
                t.weight.copy_(t.base)
            else:
                torch.add(t.base, t.layer.get_delta_weight(self.adapter).to(t.base.dtype), out=t.weight)
        self.scale = scale

    @torch.no_grad()
    def restore(self) -> None:
        """The exact base weights back, and the adapters on again (for the stock path)."""
        for t in self._targets:
            t.weight.copy_(t.base)
        self.scale = None
        self._enable_adapters(True)

    def _enable_adapters(self, enabled: bool) -> None:
        for layer in self._layers:
            if layer.disable_adapters == enabled:
                layer.enable_adapters(enabled)
