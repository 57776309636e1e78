"""Where batches run (Settings → Compute): this computer, or the studio's Ray cluster at an address.

The choice is kept in the UI settings (``ui.ini`` in the config folder, section ``compute``): it is
the app's, not the model pack's; the command line names its cluster itself (``project batch --cluster``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .recent import settings

LOCAL, CLUSTER = "local", "cluster"


@dataclass(frozen=True)
class ComputeChoice:
    """``mode`` is ``"local"`` (this computer: a worker per GPU) or ``"cluster"`` (Ray at ``address``)."""

    mode: str = LOCAL
    address: str = ""

    @property
    def on_cluster(self) -> bool:
        return self.mode == CLUSTER and bool(self.address.strip())

    def describe(self) -> str:
        return f"Ray cluster at {self.address}" if self.on_cluster else "this computer"


def load_choice() -> ComputeChoice:
    s = settings()
    mode = str(s.value("compute/mode", LOCAL) or LOCAL)
    return ComputeChoice(mode if mode in (LOCAL, CLUSTER) else LOCAL, str(s.value("compute/address", "") or ""))


def save_choice(choice: ComputeChoice) -> None:
    s = settings()
    s.setValue("compute/mode", choice.mode)
    s.setValue("compute/address", choice.address.strip())
    s.sync()


def make_runner():
    """A runner for the current choice (the batch controller calls this on its own thread when a batch starts)."""
    choice = load_choice()
    if choice.on_cluster:
        from ..core.runner_ray import RayRunner

        return RayRunner(choice.address)
    from ..core.runner import LocalRunner

    return LocalRunner.for_this_computer()
