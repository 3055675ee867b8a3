"""The two training loops: the VAE (L1 + KL), then the UNet and text encoder (ε-prediction).

Both loops are AdamW loops with diffusers' linear warm-up + cosine decay schedule
(:func:`diffusers.optimization.get_scheduler`). The schedule is advanced to the run's progress
``max(step, elapsed / max_minutes × steps)``, so a time-limited run still anneals before it stops.
The UNet loop keeps an exponential moving average of the weights (:class:`~.steps.EMA`).
A step does no host work (:mod:`layerdecomp.training.steps`): the generator lives on the
training device, and the losses are read every ``log_every`` steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel

from layerdecomp.training.config import DataConfig, UNetConfig, VAEConfig
from layerdecomp.training.dataset import TrainingData, make_training_data, tokenize
from layerdecomp.training.progress import Budget, Log, Progress, Stepper, autocast, lr_schedule
from layerdecomp.training.steps import (
    EMA,
    WARM_UP_CALLS,
    adamw,
    backward_step,
    choose,
    compile_warm_up,
    cumulative,
    random_crops,
    to_model_range,
    training_noise,
)

ConfigT = TypeVar("ConfigT", VAEConfig, UNetConfig)

__all__ = [
    "TrainingData",
    "encode_latents",
    "make_training_data",
    "to_model_range",
    "tokenize",
    "train_unet",
    "train_vae",
    "training_noise",
]


def train_vae(
    vae: AutoencoderKL,
    images: torch.Tensor,
    cfg: VAEConfig,
    generator: torch.Generator,
    log: Log = print,
    log_every: int = 50,
    progress: Progress | None = None,
    budget: Budget | None = None,
    precision: str = "fp32",
    channels_last: bool = False,
    compile_mode: str = "none",
) -> list[float]:
    """Train the autoencoder with ``mean|x - x̂| + kl_weight * KL`` (KL per latent element).

    Args:
        vae: The autoencoder (trained in place).
        images: uint8 images ``(N, 3, H, W)``.
        cfg: The VAE config.
        generator: A generator on the images' device; draws the batches, crops and posterior
            samples.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.
        progress: Where to start and what to update (a fresh one if None); its ``states``
            resume the optimizer and schedule.
        budget: What this call may spend (none: unlimited).
        precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast.
        channels_last: Train in the channels-last memory format (faster convolutions on a GPU);
            the weights are contiguous again on return.
        compile_mode: How the forward and loss run (:func:`~.steps.backward_step`); a compiled
            step is warmed up before the clock starts (:func:`~.steps.compile_warm_up`), and
            that time comes off ``cfg.max_minutes``.

    Returns:
        The loss of every step taken (over all calls).
    """
    progress = Progress() if progress is None else progress
    layout = torch.channels_last if channels_last else torch.contiguous_format
    vae.to(memory_format=layout).train()
    device = images.device
    opt = adamw(vae.parameters(), cfg.lr, 0.0, device)
    schedule = lr_schedule(opt, cfg)
    if progress.states:
        opt.load_state_dict(progress.states["optimizer"])
        schedule.load_state_dict(progress.states["schedule"])
    side = min(cfg.crop, images.shape[-1]) // 2 ** (len(vae.config.block_out_channels) - 1)
    latent_shape = (cfg.batch_size, vae.config.latent_channels, side, side)

    def loss_fn(x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        with autocast(device, precision):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.mean + posterior.std * eps).sample
        kl = posterior.kl().float().mean() / posterior.mean[0].numel()
        loss = (recon.float() - x).abs().mean() + cfg.kl_weight * kl
        return torch.stack([loss, kl])

    zero = lambda: opt.zero_grad(set_to_none=True)  # noqa: E731
    step_fn = backward_step(loss_fn, compile_mode, zero, log)
    b = cfg.batch_size
    if compile_mode != "none" and not progress.done:
        side = min(cfg.crop, images.shape[-1])
        x = torch.zeros((b, 3, side, side), device=device).contiguous(memory_format=layout)
        eps = torch.zeros(latent_shape, device=device)
        cfg = _warmed_up("vae", step_fn, (x, eps), zero, cfg, log)
    stepper = Stepper("vae", cfg, progress, budget, log)
    while stepper.begin(schedule):
        n = images.shape[0]
        idx = torch.randint(0, n, (b,), generator=generator, device=device)
        x = to_model_range(random_crops(images[idx], cfg.crop, generator))
        x = x.contiguous(memory_format=layout)
        eps = torch.randn(latent_shape, generator=generator, device=device)
        out = step_fn(x, eps)
        opt.step()
        stepper.end(out[0])
        step = progress.step
        if step % log_every == 0 or step == 1:
            stepper.read()
            rate = stepper.elapsed() / step
            log(
                f"vae step {step}/{cfg.steps} loss {np.mean(progress.losses[-log_every:]):.4f} "
                f"kl {out[1].item():.3f} ({rate:.3f} s/step)"
            )
    stepper.stop(optimizer=opt.state_dict(), schedule=schedule.state_dict())
    vae.to(memory_format=torch.contiguous_format).eval()
    return progress.losses


@torch.no_grad()
def encode_latents(
    vae: AutoencoderKL,
    images: torch.Tensor,
    batch_size: int = 256,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The posterior mean and standard deviation of every image (unscaled latents)."""
    means, stds = [], []
    for chunk in images.split(batch_size):
        dist = vae.encode(to_model_range(chunk)).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


def train_unet(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    scheduler: DDIMScheduler,
    latents: tuple[torch.Tensor, torch.Tensor],
    data: TrainingData,
    cfg: UNetConfig,
    data_cfg: DataConfig,
    generator: torch.Generator,
    log: Log = print,
    log_every: int = 50,
    progress: Progress | None = None,
    budget: Budget | None = None,
    precision: str = "fp32",
    compile_mode: str = "none",
    channels_last: bool = False,
) -> list[float]:
    """Train the UNet and the text encoder jointly with the ε-prediction loss.

    Each sample's caption is fg-only, bg-only or both (``data_cfg.caption_weights``), replaced by
    the empty caption with probability ``data_cfg.caption_dropout`` (classifier-free guidance).

    Args:
        unet: The UNet (trained in place; ends with its EMA weights once finished if
            ``cfg.ema_decay``: :class:`~.steps.EMA`, whose first update copies the weights
            and update n + 1 blends with decay ``min(ema_decay, (1 + n) / (10 + n))``).
        text_encoder: The text encoder (likewise).
        scheduler: Supplies the noise schedule (``add_noise``).
        latents: Scaled posterior ``(mean, std)`` of every training image.
        data: The training data (caption tokens).
        cfg: The UNet config.
        data_cfg: The data config (caption choice).
        generator: A generator on the latents' device; draws batches, captions, timesteps, noise.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.
        progress: Where to start and what to update (a fresh one if None); its ``states``
            resume the optimizer, schedule and EMA. Until ``done``, the models keep their raw
            (not EMA) weights, so that a later call continues from them.
        budget: What this call may spend (none: unlimited).
        precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast.
        compile_mode: How the forward and loss run (:func:`~.steps.backward_step`); a compiled
            step is warmed up on zero inputs, with no update, before the clock starts
            (:func:`~.steps.compile_warm_up`), and that time comes off ``cfg.max_minutes``.
        channels_last: Run the UNet in the channels-last memory format (contiguous on return).

    Returns:
        The loss of every step taken (over all calls).
    """
    progress = Progress() if progress is None else progress
    layout = torch.channels_last if channels_last else torch.contiguous_format
    unet.to(memory_format=layout)
    params = [*unet.parameters(), *text_encoder.parameters()]
    mean, std = latents
    device = mean.device
    opt = adamw(params, cfg.lr, cfg.weight_decay, device)
    schedule = lr_schedule(opt, cfg)
    ema = EMA(params, cfg.ema_decay) if cfg.ema_decay > 0 else None
    if progress.states:
        opt.load_state_dict(progress.states["optimizer"])
        schedule.load_state_dict(progress.states["schedule"])
        if ema is not None:
            ema.load_state_dict(progress.states["ema"])
    cdf = cumulative(data_cfg.caption_weights, device)
    alphas = scheduler.alphas_cumprod.to(device=device, dtype=torch.float32)
    signal, noise_level = alphas.sqrt(), (1 - alphas).sqrt()
    tokens, empty = data.tokens.to(device), data.empty.to(device)

    def loss_fn(z0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, ids: torch.Tensor):
        # diffusers' add_noise: sqrt(ᾱ_t) z0 + sqrt(1 - ᾱ_t) ε
        x_t = signal[t][:, None, None, None] * z0 + noise_level[t][:, None, None, None] * noise
        x_t = x_t.contiguous(memory_format=layout)
        with autocast(device, precision):
            pred = unet(x_t, t, text_encoder(ids)[0]).sample
        return torch.nn.functional.mse_loss(pred.float(), noise)[None]

    zero = lambda: opt.zero_grad(set_to_none=True)  # noqa: E731
    step_fn = backward_step(loss_fn, compile_mode, zero, log)
    unet.train()
    text_encoder.train()
    b, shape = cfg.batch_size, (cfg.batch_size, *mean.shape[1:])
    timesteps = scheduler.config.num_train_timesteps
    if compile_mode != "none" and not progress.done:
        zeros = torch.zeros(shape, device=device)
        ids = empty.repeat(b, 1)  # contiguous, as the real batches: no recompilation
        t = torch.zeros(b, dtype=torch.long, device=device)
        cfg = _warmed_up("unet", step_fn, (zeros, zeros, t, ids), zero, cfg, log)
    stepper = Stepper("unet", cfg, progress, budget, log)
    while stepper.begin(schedule):
        idx = torch.randint(0, mean.shape[0], (b,), generator=generator, device=device)
        z0 = mean[idx] + std[idx] * torch.randn(shape, generator=generator, device=device)
        kind = choose(cdf, b, generator)
        drop = torch.rand(b, generator=generator, device=device) < data_cfg.caption_dropout
        ids = torch.where(drop[:, None], empty, tokens[idx, kind])
        noise = training_noise(shape, cfg.offset_noise, generator, device)
        t = torch.randint(0, timesteps, (b,), generator=generator, device=device)
        loss = step_fn(z0, noise, t, ids)
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip, foreach=True)
        opt.step()
        if ema is not None:
            ema.step()
        stepper.end(loss[0])
        step = progress.step
        if step % log_every == 0 or step == 1:
            stepper.read()
            rate = stepper.elapsed() / step
            log(
                f"unet step {step}/{cfg.steps} loss {np.mean(progress.losses[-log_every:]):.4f} "
                f"({rate:.3f} s/step)"
            )
    states = {"optimizer": opt.state_dict(), "schedule": schedule.state_dict()}
    if ema is not None:
        states["ema"] = ema.state_dict()
    stepper.stop(**states)
    if progress.done and ema is not None:
        ema.copy_to()
    unet.to(memory_format=torch.contiguous_format).eval()
    text_encoder.eval()
    return progress.losses


def _warmed_up(
    name: str,
    step_fn: Callable[..., torch.Tensor],
    args: tuple[torch.Tensor, ...],
    zero_grad: Callable[[], None],
    cfg: ConfigT,
    log: Log,
) -> ConfigT:
    """Warm a compiled step up (:func:`~.steps.compile_warm_up`: compilation, then the CUDA
    graphs' recording) and return ``cfg`` with that time taken off its ``max_minutes``."""
    spent = compile_warm_up(step_fn, args, zero_grad, calls=WARM_UP_CALLS)
    log(f"{name}: compiled and warmed up in {spent:.0f} s")
    if cfg.max_minutes <= 0:
        return cfg
    return dataclasses.replace(cfg, max_minutes=max(cfg.max_minutes - spent / 60, 1e-6))
