"""One identity-training step (noise, UNet, loss, backward, AdamW), eager or as a CUDA graph.

The stock step issues every kernel of a UNet forward and backward from Python and then waits for
the loss: at batch 1 the GPU idles most of the step. :class:`GraphedTrainingStep` captures the
forward and backward once and replays them; the rest of the step (unscaling, clipping, AdamW, the
loss scaler's update) stays as in :class:`TrainingStep`, so both train the same way: the same
batches, fp16 with dynamic loss scaling, the same optimiser.
"""

from __future__ import annotations

from typing import Any

import torch

from .devices import DeviceChoice, autocast

#: Eager steps before the capture (cuDNN and cuBLAS set up, the loss scaler created).
WARMUP_STEPS = 2


class TrainingStep:
    """The stock step: everything eager; returns the loss as a float (waiting for the GPU)."""

    def __init__(self, unet: Any, text_encoder: Any, ids: torch.Tensor, cached_text: torch.Tensor | None,
                 noise_scheduler: Any, trainable: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, batch_size: int, choice: DeviceChoice) -> None:
        self.unet, self.text_encoder, self.ids, self.cached_text = unet, text_encoder, ids, cached_text
        self.noise_scheduler, self.trainable = noise_scheduler, trainable
        self.optimizer, self.scaler, self.batch_size, self.choice = optimizer, scaler, batch_size, choice
        self.v_prediction = noise_scheduler.config.prediction_type == "v_prediction"

    def __call__(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> float:
        device = self.choice.device
        loss = self.loss(latents.to(device), noise.to(device), timesteps.to(device))
        self.scaler.scale(loss).backward()
        self.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    def loss(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
             cache_casts: bool = True) -> torch.Tensor:
        """The denoising loss of one batch (epsilon or v target, by the scheduler's prediction type)."""
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        target = self.noise_scheduler.get_velocity(latents, noise, timesteps) if self.v_prediction else noise
        with autocast(self.choice, cache_enabled=cache_casts):
            text = self.cached_text if self.cached_text is not None else self.text_encoder(self.ids)[0]
            text = text.expand(self.batch_size, -1, -1)
            pred = self.unet(noisy.to(self.unet.dtype), timesteps, text.to(self.unet.dtype)).sample
        return torch.nn.functional.mse_loss(pred.float(), target.float())

    def update(self) -> None:
        """Unscale, clip to norm 1, AdamW (skipped by the scaler on an overflow), scaler update."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(list(self.trainable.values()), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()


class GraphedTrainingStep(TrainingStep):
    """The same step with the forward and backward replayed from a CUDA graph (CUDA only).

    The first :data:`WARMUP_STEPS` steps run eagerly on a side stream; the next one is captured and
    then replayed. The gradients live in the graph's memory from then on, so they are overwritten by
    each replay instead of being zeroed.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[torch.Tensor, ...] | None = None
        self._loss: torch.Tensor | None = None

    def __call__(self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> float:
        device = self.choice.device
        if self._inputs is None:
            self._inputs = (latents.to(device), noise.to(device), timesteps.to(device))
        else:
            for buffer, value in zip(self._inputs, (latents, noise, timesteps), strict=True):
                buffer.copy_(value)
        self._calls += 1
        if self._calls <= WARMUP_STEPS:
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                loss = self.loss(*self._inputs, cache_casts=False)
                self.scaler.scale(loss).backward()
                self.update()
                self.optimizer.zero_grad(set_to_none=True)
            torch.cuda.current_stream(device).wait_stream(side)
            return float(loss.detach())
        if self._graph is None:
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._loss = self.loss(*self._inputs, cache_casts=False)
                self.scaler.scale(self._loss).backward()
        self._graph.replay()
        self.update()
        return float(self._loss.detach())
