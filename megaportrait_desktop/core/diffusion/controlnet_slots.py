"""Low-memory mode: four ControlNets' weights in pinned CPU memory, two ControlNets on the GPU.

No stage uses more than two ControlNets, so the GPU holds two "slot" ControlNets and a stage copies
the weights of the roles it needs into them (a pinned host-to-device copy, about 0.7 GB per SD 1.5
ControlNet, skipped when the slot already holds that role). The slots' tensors never move, so the
captured step graphs stay valid whichever role a slot holds. This saves the memory of two ControlNets
(about 1.4 GB in half precision) at the price of those copies.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from .models import architecture

SLOTS = 2


class ControlNetSlots:
    """Slot ControlNets on ``device`` and every role's weights in pinned CPU memory.

    The role modules themselves are moved to the CPU and their weights pinned there, so each role's
    weights are in CPU memory once (the stock pipelines keep referring to those modules).

    Raises
    ------
    ValueError
        When the ControlNets do not share one architecture (their weights cannot share a slot).
    """

    def __init__(self, controlnets: dict[str, Any], device: torch.device) -> None:
        if len({architecture(net) for net in controlnets.values()}) != 1:
            raise ValueError("the ControlNets have different architectures; low-memory mode needs them alike")
        self.device = device
        self._pinned: dict[str, dict[str, torch.Tensor]] = {}
        for role, net in controlnets.items():
            net.to("cpu")
            if device.type == "cuda":
                for t in (*net.parameters(), *net.buffers()):
                    t.data = t.data.pin_memory()
            self._pinned[role] = net.state_dict()
        first = next(iter(controlnets.values()))
        self.modules: dict[str, Any] = {f"slot{i}": copy.deepcopy(first).to(device) for i in range(SLOTS)}
        self._holds: dict[str, str | None] = dict.fromkeys(self.modules)
        self.bytes_copied = 0

    def slot_names(self, roles: tuple[str, ...]) -> tuple[str, ...]:
        """The slots a stage with these ControlNet roles runs on, in order."""
        if len(roles) > SLOTS:
            raise ValueError(f"a stage may use at most {SLOTS} ControlNets in low-memory mode")
        return tuple(f"slot{i}" for i in range(len(roles)))

    @torch.no_grad()
    def load(self, roles: tuple[str, ...]) -> None:
        """Copy the weights of ``roles`` into the slots (asynchronously, in stream order)."""
        for slot, role in zip(self.slot_names(roles), roles, strict=True):
            if self._holds[slot] == role:
                continue
            state = self.modules[slot].state_dict()
            for name, tensor in self._pinned[role].items():
                state[name].copy_(tensor, non_blocking=True)
                self.bytes_copied += tensor.numel() * tensor.element_size()
            self._holds[slot] = role
