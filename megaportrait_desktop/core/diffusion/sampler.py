"""The fast path's denoising loop: diffusers' ControlNet img2img and inpaint ``__call__``, step captured.

A diffusers pipeline call cannot be captured as a CUDA graph whole: its loop runs the scheduler in
Python and synchronises with the GPU several times a step. So this module runs the same preparation
through the pipeline's own methods (prompt encoding, image and control-image preprocessing,
timesteps, latents) and the same loop, but the ControlNets, UNet and guidance of each step are one
:class:`~.graphs.StepGraph` call, and the loop avoids the stock loop's host round trips (the
scheduler's noise levels live on the GPU; the inpaint blend indexes them there; UniPC's small linear
solve skips its error check, :func:`solve_without_host_check`; the draft samplers look their noise
levels up with timesteps kept on the CPU, :func:`draft_timesteps`), so the CPU prepares the next step
while the GPU runs this one. It also encodes an init image once when the pair's two calls share it,
keeps the prompt embeddings of the last few prompts, and sends images to the device as 8-bit pixels
(:func:`uploaded`). Everything else, and every random draw and its order, is the stock pipeline's,
so on the same device and kernels both give the same image.

It takes the keyword arguments the stages pass to a pipeline call (a subset of diffusers'),
and returns what ``pipe(...).images`` returns for ``output_type="np"``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch


def denoise_step(unet: Callable, controlnets: list[Callable], cfg: bool, latents: torch.Tensor, t: torch.Tensor,
                 embeds: torch.Tensor, controls: list[torch.Tensor], scales: list[torch.Tensor],
                 guidance: torch.Tensor, side: torch.cuda.Stream | None = None) -> torch.Tensor:
    """One step's noise prediction (with classifier-free guidance when ``cfg``), as the stock loop computes it.

    ``scales`` and ``guidance`` are 0-d tensors, so one captured graph serves any value (on the GPU a
    half-precision step rounds them to half first, a relative difference under 5e-4 on the residuals).
    With a ``side`` stream, the ControlNets after the first run on it, beside the first: at batch 1 one
    ControlNet leaves much of a large GPU idle. Their residuals are summed afterwards in the stock order,
    so the result is the same to the bit.
    """
    x = torch.cat([latents] * 2) if cfg else latents

    def control(i: int) -> tuple[list[torch.Tensor], torch.Tensor]:
        return controlnets[i](x, t, encoder_hidden_states=embeds, controlnet_cond=controls[i],
                              conditioning_scale=scales[i], guess_mode=False, return_dict=False)

    if side is not None and len(controlnets) > 1:
        main = torch.cuda.current_stream(x.device)
        side.wait_stream(main)  # also orders this call's side work after the last call's main-stream reads
        with torch.cuda.stream(side):
            rest = [control(i) for i in range(1, len(controlnets))]
        residuals = [control(0), *rest]
        main.wait_stream(side)
    else:
        residuals = [control(i) for i in range(len(controlnets))]
    down = mid = None
    for d, m in residuals:
        if down is None:
            down, mid = d, m
        else:  # MultiControlNetModel's sum, in its order
            down = [prev + cur for prev, cur in zip(down, d, strict=True)]
            mid = mid + m
    noise = unet(x, t, encoder_hidden_states=embeds, down_block_additional_residuals=down,
                 mid_block_additional_residual=mid, return_dict=False)[0]
    if not cfg:
        return noise
    uncond, text = noise.chunk(2)
    return uncond + guidance * (text - uncond)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` (on the CPU) copied to ``device`` without waiting for the GPU's queued work: through pinned
    memory, as PyTorch's copy from ordinary memory waits for the stream to finish."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


@contextlib.contextmanager
def solve_without_host_check(device: torch.device) -> Iterator[None]:
    """``torch.linalg.solve`` without its error check, inside the block (on CUDA).

    UniPC's corrector solves a 2×2 system with ``torch.linalg.solve`` every step, and the check
    copies the solver's status to the host: the CPU waits for the GPU to finish the step, and the GPU
    then idles for the ~3 ms the scheduler takes in Python. ``solve_ex`` computes the same solution
    and leaves the status on the GPU (the system is a Vandermonde matrix of distinct noise levels,
    never singular). Only the scheduler step runs inside the block; nothing else on the worker
    thread solves systems meanwhile.
    """
    if device.type != "cuda":
        yield
        return
    checked = torch.linalg.solve

    def unchecked(a: torch.Tensor, b: torch.Tensor, *, left: bool = True) -> torch.Tensor:
        return torch.linalg.solve_ex(a, b, left=left)[0]

    torch.linalg.solve = unchecked
    try:
        yield
    finally:
        torch.linalg.solve = checked


@contextlib.contextmanager
def draft_timesteps(scheduler: Any, timesteps: torch.Tensor,
                    on_device: torch.Tensor) -> Iterator[Callable[[int], tuple[torch.Tensor, torch.Tensor]]]:
    """LCM's and TCD's steps without host round trips, for a scheduler whose timesteps were set on the CPU;
    yields ``at(i)``: the ``i``-th timestep on the device (``on_device``, for the UNet) and on the CPU
    (``timesteps``, for the scheduler).

    Both samplers compare the next timestep with 0 and LCM looks the first one up in its schedule: with
    the timesteps on the GPU, as the stock call has them, each of those copies a timestep to the host
    and waits for the GPU to finish the step. Their noise tables are on the GPU either way (``add_noise``
    moves them there), so a CPU timestep looks up the same GPU values. LCM's boundary scalings are
    computed from the timestep itself, and where they live decides their rounding in the step's
    arithmetic (a GPU scalar is rounded to half precision first), so they still come from the GPU
    timestep, as in the stock call.
    """
    current: dict[str, torch.Tensor] = {}
    scalings = getattr(type(scheduler), "get_scalings_for_boundary_condition_discrete", None)
    if scalings is not None:
        scheduler.get_scalings_for_boundary_condition_discrete = lambda _t: scalings(scheduler, current["t"])

    def at(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        current["t"] = on_device[i]
        return on_device[i], timesteps[i]

    try:
        yield at
    finally:
        if scalings is not None:
            del scheduler.get_scalings_for_boundary_condition_discrete


#: What diffusers' image processors make of each 8-bit value (``v / 255`` in float32), and ``2·x − 1`` of it when
#: they normalise, by device.
_LEVELS: dict[tuple[bool, torch.device], torch.Tensor] = {}


def uploaded(processor: Any, images: Any, width: int, height: int, device: torch.device) -> torch.Tensor | None:
    """``processor.preprocess(images, height=height, width=width)``, made on ``device``: float32 ``(N, 3, H, W)``.

    The processor turns each image into float32 on the CPU (a few milliseconds for a 512 crop) and the
    pipeline copies four times the bytes to the device. Here the 8-bit pixels travel and a 256-entry
    table on the device gives each the processor's own float32 value, in the layout it gives them. Only
    for RGB PIL images already of that size (the processor's resize is then a copy); ``None`` for
    anything else: the caller runs the processor.
    """
    from PIL import Image

    images = images if isinstance(images, list) else [images]
    config = processor.config
    if config.do_binarize or config.do_convert_grayscale or not all(
            isinstance(im, Image.Image) and im.mode == "RGB" and im.size == (width, height) for im in images):
        return None
    normalise = bool(config.do_normalize)
    table = _LEVELS.get((normalise, device))
    if table is None:
        unit = torch.from_numpy(np.arange(256, dtype=np.float32) / np.float32(255.0))
        table = _LEVELS[(normalise, device)] = to_device(2.0 * unit - 1.0 if normalise else unit, device)
    pixels = torch.from_numpy(np.stack([np.asarray(im) for im in images]))  # (N, H, W, 3) uint8
    return table[to_device(pixels, device).long()].permute(0, 3, 1, 2)


#: Prompt embeddings kept (prompt, negative prompt, guidance and text-encoder weights each make a new one).
KEPT_PROMPTS = 4


class Sampler:
    """Runs stage calls for one :class:`~.fast.FastRuntime` (its step graphs, prompt and encode caches)."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self._encoded: tuple[Any, Any] | None = None  # (init image object, its latent distribution)
        self._prompts: dict[tuple, torch.Tensor] = {}  # the last few, oldest first

    def __call__(self, pipe: Any, kind: str, roles: tuple[str, ...], *, prompt: str | list[str],
                 negative_prompt: str | list[str], image: Any, control_image: Any, strength: float,
                 num_inference_steps: int, guidance_scale: float, controlnet_conditioning_scale: float | list[float],
                 height: int, width: int, generator: torch.Generator | list[torch.Generator],
                 output_type: str = "np", callback_on_step_end: Callable | None = None,
                 mask_image: Any = None) -> np.ndarray:
        if output_type != "np":
            raise ValueError("the fast path returns numpy images only")
        device = self.runtime.device
        batch = len(prompt) if isinstance(prompt, list) else 1
        pipe._guidance_scale = guidance_scale  # the pipeline's own rule for when guidance is on
        cfg = pipe.do_classifier_free_guidance
        embeds = self.prompt_embeds(pipe, prompt, negative_prompt, device, cfg)
        dtype = embeds.dtype
        multi = len(roles) > 1
        per_net = control_image if multi else [control_image]
        if multi and not isinstance(controlnet_conditioning_scale, list):
            controlnet_conditioning_scale = [controlnet_conditioning_scale] * len(roles)
        scales = controlnet_conditioning_scale if multi else [
            controlnet_conditioning_scale[0] if isinstance(controlnet_conditioning_scale, list)
            else controlnet_conditioning_scale]
        net_dtype = pipe.controlnet.dtype
        controls = [self._control(pipe, kind, c, width, height, batch, device, net_dtype, cfg) for c in per_net]

        scheduler = pipe.scheduler
        unipc = hasattr(scheduler, "_sigma_to_alpha_sigma_t")
        # The draft samplers' timesteps stay on the CPU (see draft_timesteps).
        scheduler.set_timesteps(num_inference_steps, device=device if unipc else torch.device("cpu"))
        if unipc:
            # UniPC keeps its noise levels on the CPU and copies one to the GPU (a synchronising copy) several
            # times a step; on the GPU they are the same float32 values and nothing waits.
            scheduler.sigmas = scheduler.sigmas.to(device)
        # The draft samplers (LCM, TCD) draw noise between steps from the call's generators, as the stock call.
        extra = pipe.prepare_extra_step_kwargs(generator, 0.0)
        timesteps, _ = pipe.get_timesteps(num_inference_steps, strength, device)
        # (for the draft samplers, a copy on the device too: add_noise copies a CPU timestep, waiting for the GPU)
        on_device = timesteps if unipc else to_device(timesteps, device)
        latent_timestep = on_device[:1].repeat(batch)
        pipe._num_timesteps = len(timesteps)

        if kind == "inpaint":
            init = uploaded(pipe.image_processor, image, width, height, device)
            if init is None:
                init = pipe.image_processor.preprocess(image, height=height, width=width, crops_coords=None,
                                                       resize_mode="default").to(dtype=torch.float32)
            init = self.runtime.layout(init)
            mask = pipe.mask_processor.preprocess(mask_image, height=height, width=width, resize_mode="default",
                                                  crops_coords=None)
            latents, noise, image_latents = pipe.prepare_latents(
                batch, pipe.vae.config.latent_channels, height, width, dtype, device, generator, None, image=init,
                timestep=latent_timestep, is_strength_max=strength == 1.0, return_noise=True,
                return_image_latents=True)
            factor = pipe.vae_scale_factor
            # The stock call also encodes the masked image, which a 4-channel UNet never reads. Skipping it changes
            # nothing with UniPC; the draft samplers draw noise at every step from the same generators, so for
            # them the sample the stock call takes of its latents is drawn here, without the encode.
            if not unipc:
                from diffusers.utils.torch_utils import randn_tensor

                randn_tensor((batch, pipe.vae.config.latent_channels, height // factor, width // factor),
                             generator=generator, device=device, dtype=pipe.vae.dtype)
            init_mask = torch.nn.functional.interpolate(to_device(mask, device),
                                                        size=(height // factor, width // factor))
            init_mask = init_mask.to(dtype=dtype)
            if init_mask.shape[0] < batch:
                init_mask = init_mask.repeat(batch // init_mask.shape[0], 1, 1, 1)
            if unipc:
                alphas, sigmas = scheduler._sigma_to_alpha_sigma_t(scheduler.sigmas.to(device=device, dtype=dtype))
        else:
            latents = self._img2img_latents(pipe, image, latent_timestep, batch, height, width, dtype, device,
                                            generator)

        step = self.runtime.step(roles, cfg, latents, embeds, controls)
        step.set(embeds=embeds, controls=controls, guidance=float(guidance_scale),
                 scales=[float(s) for s in scales])
        with contextlib.ExitStack() as stack:
            at = (lambda i: (timesteps[i], timesteps[i])) if unipc else stack.enter_context(
                draft_timesteps(scheduler, timesteps, on_device))
            for i in range(len(timesteps)):
                t, t_scheduler = at(i)
                step.set(latents=scheduler.scale_model_input(latents, t), t=t)
                noise_pred = step()
                with solve_without_host_check(device):
                    latents = scheduler.step(noise_pred, t_scheduler, latents, **extra, return_dict=False)[0]
                if kind == "inpaint":
                    proper = image_latents
                    if i < len(timesteps) - 1:
                        if unipc:
                            k = scheduler.step_index  # the stock call's add_noise uses this index
                            proper = alphas[k].view(1, 1, 1, 1) * image_latents + sigmas[k].view(1, 1, 1, 1) * noise
                        else:  # the stock call's own add_noise, given the timestep on the device (nothing waits)
                            proper = scheduler.add_noise(image_latents, noise, on_device[i + 1:i + 2])
                    latents = (1 - init_mask) * proper + init_mask * latents
                if callback_on_step_end is not None:
                    out = callback_on_step_end(pipe, i, t, {"latents": latents})
                    latents = out.pop("latents", latents)

        decoded = pipe.vae.decode(self.runtime.layout(latents / pipe.vae.config.scaling_factor), return_dict=False)[0]
        # The pipeline's postprocess (denormalise, then float32 NHWC on the CPU) with the conversion to float32 done on
        # the device: the same numbers, one copy, and no thread-parallel conversion on the CPU.
        images = pipe.image_processor.denormalize(decoded).float().permute(0, 2, 3, 1).contiguous()
        return images.cpu().numpy()

    # ------------------------------------------------------------------------------------ preparation

    def prompt_embeds(self, pipe: Any, prompt: str | list[str], negative: str | list[str],
                      device: torch.device, cfg: bool = True) -> torch.Tensor:
        """``[negative; prompt]`` embeddings (``prompt`` alone without guidance), kept for the last
        :data:`KEPT_PROMPTS` prompts and text encoder weights (a chain's stages ask for two or three)."""
        key = (tuple(prompt) if isinstance(prompt, list) else prompt,
               tuple(negative) if isinstance(negative, list) else negative, cfg, self.runtime.text_weights_token())
        embeds = self._prompts.pop(key, None)
        if embeds is None:
            positive, negative_embeds = pipe.encode_prompt(prompt, device, 1, cfg, negative)
            embeds = torch.cat([negative_embeds, positive]) if cfg else positive
            while len(self._prompts) >= KEPT_PROMPTS:
                del self._prompts[next(iter(self._prompts))]
        self._prompts[key] = embeds  # the newest last
        return embeds

    def _control(self, pipe: Any, kind: str, image: Any, width: int, height: int, batch: int,
                 device: torch.device, dtype: torch.dtype, cfg: bool) -> torch.Tensor:
        pixels = uploaded(pipe.control_image_processor, image, width, height, device)
        if pixels is not None:  # the rest of the stock prepare_control_image, on the device
            pixels = pixels.repeat_interleave(batch if pixels.shape[0] == 1 else 1, dim=0).to(dtype=dtype)
            return torch.cat([pixels] * 2) if cfg else pixels
        extra = {"crops_coords": None, "resize_mode": "default"} if kind == "inpaint" else {}
        return pipe.prepare_control_image(image=image, width=width, height=height, batch_size=batch,
                                          num_images_per_prompt=1, device=device, dtype=dtype,
                                          do_classifier_free_guidance=cfg, guess_mode=False, **extra)

    def _img2img_latents(self, pipe: Any, image: Any, timestep: torch.Tensor, batch: int, height: int, width: int,
                         dtype: torch.dtype, device: torch.device, generator: Any) -> torch.Tensor:
        """``StableDiffusionControlNetImg2ImgPipeline.prepare_latents``, encoding a repeated image once."""
        from diffusers.utils.torch_utils import randn_tensor

        images = image if isinstance(image, list) else [image]
        if any(im is not images[0] for im in images):
            raise ValueError("the fast path encodes one init image per call")
        if self._encoded is not None and self._encoded[0] is images[0]:
            dist = self._encoded[1]
        else:
            pixels = uploaded(pipe.image_processor, images[0], width, height, device)
            if pixels is None:
                pixels = pipe.image_processor.preprocess(images[0], height=height, width=width).to(dtype=torch.float32)
            dist = pipe.vae.encode(self.runtime.layout(pixels.to(device=device, dtype=dtype))).latent_dist
            self._encoded = (images[0], dist)
        generators = generator if isinstance(generator, list) else [generator]
        if len(generators) != batch:
            raise ValueError("the fast path needs one generator per image")
        init = torch.cat([dist.sample(g) for g in generators]) * pipe.vae.config.scaling_factor
        noise = randn_tensor(init.shape, generator=generator, device=device, dtype=dtype)
        return pipe.scheduler.add_noise(init, noise, timestep)
