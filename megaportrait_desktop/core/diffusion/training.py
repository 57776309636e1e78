"""Identity training (the Identity Net's customisation): a LoRA on the UNet, optionally the text encoder.

Trained on the identity set's aligned face crops (and their mirror images) with a rare-token prompt
("a photo of sks person"), DreamBooth-style but with LoRA (peft) so the base stays untouched and the
result is a few MB. Latents are encoded once and cached; GPUs train in mixed precision.

Progress reports step, loss and ETA; a cancel stops within one step (after writing a checkpoint);
a checkpoint every ``checkpoint_every`` steps lets an interrupted run resume where it stopped.
The same seed on the same device gives the same LoRA: all randomness (LoRA init, data order,
noise, timesteps) comes from one seeded CPU generator whose state is checkpointed with the weights.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import Cancelled, RequestError
from ..progress import Reporter
from .devices import DeviceChoice, deterministic, out_of_memory_as_message
from .lora_export import KOHYA_FILE, LORA_FILE, export_kohya
from .training_step import GraphedTrainingStep, TrainingStep

CHECKPOINT_FILE = "checkpoint.safetensors"
UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]
_ADAPTER = "identity_training"


@dataclass(frozen=True)
class TrainingParams:
    """Settings of one identity training.

    Attributes
    ----------
    token, class_word:
        The prompt is ``"a photo of {token} {class_word}"``; ``token`` should be rare in the base's
        vocabulary ("sks") so the LoRA binds the identity to it without overwriting a common word.
    rank, alpha:
        LoRA rank and alpha (``None`` = the rank, i.e. a scale of 1).
    steps, learning_rate, batch_size, seed:
        The optimisation: AdamW on the LoRA weights only.
    train_text_encoder:
        Also put a LoRA on the text encoder's attention (stronger identity, more risk of overfitting).
    resolution:
        Size of the training crops (512 for SD 1.5).
    flip:
        Add the mirror image of every crop (doubles a small identity set; faces are near-symmetric).
    checkpoint_every:
        Steps between resumable checkpoints.
    """

    token: str = "sks"
    class_word: str = "person"
    rank: int = 8
    alpha: float | None = None
    steps: int = 400
    learning_rate: float = 1e-4
    batch_size: int = 1
    seed: int = 0
    train_text_encoder: bool = False
    resolution: int = 512
    flip: bool = True
    checkpoint_every: int = 50

    @property
    def prompt(self) -> str:
        return f"a photo of {self.token} {self.class_word}"

    def validate(self) -> None:
        if self.rank < 1 or self.steps < 1 or self.batch_size < 1 or self.learning_rate <= 0:
            raise RequestError("Rank, steps and batch size must be at least 1 and the learning rate positive.")
        if self.resolution % 8 or not 64 <= self.resolution <= 1024:
            raise RequestError(f"The training size {self.resolution} must be a multiple of 8 from 64 to 1024.")

    def same_run(self, other: TrainingParams) -> bool:
        """Whether a checkpoint of ``other`` can be resumed under these settings (only ``steps`` may grow)."""
        a, b = asdict(self), asdict(other)
        a.pop("steps"), b.pop("steps"), a.pop("checkpoint_every"), b.pop("checkpoint_every")
        return a == b


@dataclass(frozen=True)
class TrainingResult:
    """What a training wrote: the diffusers LoRA, its kohya export, the losses, and where it resumed."""

    lora_path: Path
    kohya_path: Path
    losses: tuple[float, ...]
    resumed_from: int
    prompt: str


def train_identity(crops: list[np.ndarray], components: dict[str, Any], out_dir: str | Path,
                   params: TrainingParams, choice: DeviceChoice, reporter: Reporter | None = None,
                   fast: bool = False) -> TrainingResult:
    """Train an identity LoRA on aligned face crops and save it in ``out_dir``.

    Parameters
    ----------
    crops:
        float32 RGB ``[0, 1]`` aligned face crops (any size: resized to ``params.resolution``).
    components:
        The base model's ``unet``, ``vae``, ``text_encoder``, ``tokenizer``, ``scheduler`` (from
        :func:`.models.load_base`). The LoRA is added for the training and removed afterwards.
    out_dir:
        Gets ``identity_lora.safetensors`` (diffusers), ``identity_lora_kohya.safetensors`` and, while
        training, ``checkpoint.safetensors``; a checkpoint there from the same settings is resumed.
    fast:
        On CUDA (without offload), replay each step's forward and backward from a CUDA graph
        (:mod:`.training_step`); same batches, same loss.

    Raises
    ------
    Cancelled
        When cancelled (the checkpoint of the last finished step is kept for resuming).
    OutOfMemory
        With the setting to change.
    """
    from diffusers import DDPMScheduler

    params.validate()
    if not crops:
        raise RequestError("No aligned face crops to train on; add photos of the client with a visible face.")
    reporter = reporter or Reporter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    unet, vae, text_encoder, tokenizer = (components[k] for k in ("unet", "vae", "text_encoder", "tokenizer"))
    noise_scheduler = DDPMScheduler.from_config(components["scheduler"].config)
    device = choice.device
    fast = fast and device.type == "cuda" and not choice.offload
    with out_of_memory_as_message(choice, "training the identity"), deterministic(choice):
        for model in (unet, vae, text_encoder):
            model.to(device)
            model.requires_grad_(False)
        reporter("train", 0, params.steps, "Encoding the identity crops")
        latents_mean, latents_std = _encode(crops, vae, params, device)
        try:
            return _train(unet, text_encoder, tokenizer, noise_scheduler, latents_mean, latents_std,
                          out_dir, params, choice, reporter, fast)
        finally:
            _remove_adapters(unet, text_encoder)


def _train(unet, text_encoder, tokenizer, noise_scheduler, latents_mean, latents_std, out_dir: Path,
           params: TrainingParams, choice: DeviceChoice, reporter: Reporter, fast: bool) -> TrainingResult:
    from peft import LoraConfig

    device = choice.device
    rng = torch.Generator("cpu").manual_seed(params.seed)
    alpha = params.alpha if params.alpha is not None else params.rank
    torch.manual_seed(params.seed)  # peft draws the LoRA A matrices from the global generator
    unet.add_adapter(LoraConfig(r=params.rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                target_modules=UNET_TARGETS), adapter_name=_ADAPTER)
    if params.train_text_encoder:
        text_encoder.add_adapter(LoraConfig(r=params.rank, lora_alpha=alpha, init_lora_weights="gaussian",
                                            target_modules=TEXT_TARGETS), adapter_name=_ADAPTER)
    trainable = _lora_parameters(unet, text_encoder, params.train_text_encoder)
    for p in trainable.values():
        p.data = p.data.float()  # LoRA weights train in fp32 even when the base is fp16
    optimizer = torch.optim.AdamW(list(trainable.values()), lr=params.learning_rate, weight_decay=1e-2)
    use_scaler = device.type == "cuda" and choice.dtype == torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    ids = tokenizer(params.prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    cached_text = None
    if not params.train_text_encoder:
        with torch.no_grad():
            cached_text = text_encoder(ids)[0]

    start, losses = 0, []
    checkpoint = out_dir / CHECKPOINT_FILE
    if checkpoint.exists():
        start, losses = _load_checkpoint(checkpoint, params, trainable, optimizer, rng)
    unet.train()
    if choice.offload:
        # Small GPUs (the ones that offload at inference): recompute activations instead of keeping them.
        unet.enable_gradient_checkpointing()
    started = time.perf_counter()
    n = latents_mean.shape[0]
    step_kind = GraphedTrainingStep if fast else TrainingStep
    train_step = step_kind(unet, text_encoder, ids, cached_text, noise_scheduler, trainable, optimizer, scaler,
                           params.batch_size, choice)
    step = start
    try:
        for step in range(start, params.steps):
            # Every draw from one CPU generator, in a fixed order: the same seed gives the same batches.
            index = torch.randint(0, n, (params.batch_size,), generator=rng)
            sample_noise = torch.randn(latents_mean[index].shape, generator=rng)
            latents = latents_mean[index] + latents_std[index] * sample_noise
            noise = torch.randn(latents.shape, generator=rng)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (params.batch_size,),
                                      generator=rng)
            losses.append(train_step(latents, noise, timesteps))
            done = step + 1
            elapsed = time.perf_counter() - started
            eta = elapsed / (done - start) * (params.steps - done)
            if done % params.checkpoint_every == 0 and done < params.steps:
                _save_checkpoint(checkpoint, done, params, trainable, optimizer, rng, losses)
            reporter("train", done, params.steps, f"step {done}/{params.steps}, loss {losses[-1]:.4f}, "
                                                  f"ETA {eta:.0f} s")
    except Cancelled:
        # ``step`` finished its update before the report raised: keep it for resuming.
        _save_checkpoint(checkpoint, step + 1, params, trainable, optimizer, rng, losses)
        raise
    finally:
        unet.eval()
        if choice.offload:
            unet.disable_gradient_checkpointing()

    lora_path = _save_lora(unet, text_encoder, out_dir, params, alpha)
    kohya_path = export_kohya(lora_path, out_dir / KOHYA_FILE, alpha=alpha)
    checkpoint.unlink(missing_ok=True)
    return TrainingResult(lora_path, kohya_path, tuple(losses), start, params.prompt)


def _encode(crops: list[np.ndarray], vae, params: TrainingParams, device: torch.device):
    """Cache the crops' latent distributions (mean, std); flips included. Sampled per step."""
    import cv2

    images = []
    for crop in crops:
        crop = np.asarray(crop, np.float32)
        if crop.shape[:2] != (params.resolution, params.resolution):
            crop = cv2.resize(crop, (params.resolution, params.resolution), interpolation=cv2.INTER_AREA)
        images.append(crop)
        if params.flip:
            images.append(crop[:, ::-1])
    batch = torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).copy()) * 2.0 - 1.0
    means, stds = [], []
    with torch.no_grad():
        for chunk in batch.split(4):
            dist = vae.encode(chunk.to(device, vae.dtype)).latent_dist
            means.append(dist.mean.float().cpu())
            stds.append(dist.std.float().cpu())
    factor = vae.config.scaling_factor
    return torch.cat(means) * factor, torch.cat(stds) * factor


def _lora_parameters(unet, text_encoder, with_text: bool) -> dict[str, torch.nn.Parameter]:
    params = {f"unet.{n}": p for n, p in unet.named_parameters() if "lora_" in n}
    if with_text:
        params.update({f"text_encoder.{n}": p for n, p in text_encoder.named_parameters() if "lora_" in n})
    for p in params.values():
        p.requires_grad_(True)
    return params


def _save_lora(unet, text_encoder, out_dir: Path, params: TrainingParams, alpha: float) -> Path:
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import load_file, save_file

    unet_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet, adapter_name=_ADAPTER))
    text_layers = None
    if params.train_text_encoder:
        text_layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(text_encoder, adapter_name=_ADAPTER))
    StableDiffusionPipeline.save_lora_weights(out_dir, unet_lora_layers=unet_layers,
                                              text_encoder_lora_layers=text_layers, weight_name=LORA_FILE,
                                              safe_serialization=True)
    # Record how it was trained in the file itself (provenance; the prompt the user must use).
    path = out_dir / LORA_FILE
    state = load_file(str(path))
    save_file({k: v.float().contiguous() for k, v in state.items()}, str(path), metadata={
        "format": "pt", "megaportrait.prompt": params.prompt, "megaportrait.lora_alpha": str(alpha),
        "megaportrait.training": json.dumps(asdict(params))})
    return path


def _save_checkpoint(path: Path, step: int, params: TrainingParams, trainable: dict[str, torch.nn.Parameter],
                     optimizer: torch.optim.Optimizer, rng: torch.Generator, losses: list[float]) -> None:
    from safetensors.torch import save_file

    tensors = {f"lora.{name}": p.detach().float().cpu().contiguous() for name, p in trainable.items()}
    for i, p in enumerate(trainable.values()):
        state = optimizer.state.get(p, {})
        for key in ("exp_avg", "exp_avg_sq", "step"):
            if key in state:
                tensors[f"opt.{i}.{key}"] = torch.as_tensor(state[key]).detach().float().cpu().reshape(-1)
    tensors["rng"] = rng.get_state()
    tensors["losses"] = torch.tensor(losses, dtype=torch.float64)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"step": str(step), "params": json.dumps(asdict(params))})
    tmp.replace(path)  # atomic: an interruption never leaves a half-written checkpoint


def _load_checkpoint(path: Path, params: TrainingParams, trainable: dict[str, torch.nn.Parameter],
                     optimizer: torch.optim.Optimizer, rng: torch.Generator) -> tuple[int, list[float]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        saved = TrainingParams(**json.loads(meta.get("params", "{}")))
        if not params.same_run(saved):
            return 0, []  # settings changed: a fresh training, the stale checkpoint is overwritten
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    with torch.no_grad():
        for name, p in trainable.items():
            p.copy_(tensors[f"lora.{name}"].to(p.device, p.dtype))
    for i, p in enumerate(trainable.values()):
        if f"opt.{i}.exp_avg" in tensors:
            optimizer.state[p] = {
                "step": tensors[f"opt.{i}.step"].reshape(()).clone(),
                "exp_avg": tensors[f"opt.{i}.exp_avg"].reshape(p.shape).to(p.device),
                "exp_avg_sq": tensors[f"opt.{i}.exp_avg_sq"].reshape(p.shape).to(p.device),
            }
    rng.set_state(tensors["rng"])
    return int(meta["step"]), [float(x) for x in tensors["losses"]]


def _remove_adapters(unet, text_encoder) -> None:
    """Leave the shared base models as they came: no training adapter, no peft layers, no gradients.

    The layers go too, not only the adapter: the fast path compiled the plain modules, and a
    wrapper left in place would make it trace (and maybe compile) them again.
    """
    from diffusers.utils.peft_utils import recurse_remove_peft_layers

    for model in (unet, text_encoder):
        # It may never have got one (the text encoder when only the UNet trains).
        with contextlib.suppress(ValueError, KeyError, AttributeError):
            model.delete_adapters([_ADAPTER]) if hasattr(model, "delete_adapters") else model.delete_adapter(_ADAPTER)
        recurse_remove_peft_layers(model)
        model.requires_grad_(False)
