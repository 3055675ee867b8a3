"""The two training loops: the VAE (L1 + KL), then the UNet and text encoder (ε-prediction).

Both loops are plain AdamW loops with diffusers' linear warm-up + cosine decay schedule
(:func:`diffusers.optimization.get_scheduler`). The schedule is advanced to the run's progress
``max(step, elapsed / max_minutes × steps)``, so a time-limited run still anneals before it stops.
The UNet loop keeps an exponential moving average of the weights with diffusers'
:class:`~diffusers.training_utils.EMAModel`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.optim.lr_scheduler import LRScheduler
from transformers import CLIPTextModel, CLIPTokenizer

from layerdecomp.data.composites import make_composite
from layerdecomp.training.config import DataConfig, UNetConfig, VAEConfig

Log = Callable[[str], None]


@dataclass
class TrainingData:
    """Pre-generated composites: uint8 images ``(N, 3, H, W)`` and caption token ids ``(N, 3, L)``
    (fg-only, bg-only, both), plus the empty caption's ids ``(L,)``."""

    images: torch.Tensor
    tokens: torch.Tensor
    empty: torch.Tensor


def tokenize(tokenizer: CLIPTokenizer, texts: list[str]) -> torch.Tensor:
    """Token ids exactly as the SD pipelines make them (pad and truncate to the maximum length)."""
    return tokenizer(
        texts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids


def make_training_data(
    cfg: DataConfig, tokenizer: CLIPTokenizer, split: str = "train", n: int | None = None
) -> TrainingData:
    """Generate ``n`` composites of a split (default: ``cfg.num_train`` of train), tokenized."""
    n = cfg.num_train if n is None else n
    samples = [make_composite(i, split, cfg.size, cfg.seed) for i in range(n)]  # type: ignore[arg-type]
    images = torch.from_numpy(np.stack([c.image for c in samples])).permute(0, 3, 1, 2)
    texts = [t for c in samples for t in (c.caption_fg, c.caption_bg, c.caption)]
    tokens = tokenize(tokenizer, texts).view(n, 3, -1)
    return TrainingData(images.contiguous(), tokens, tokenize(tokenizer, [""])[0])


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


LR_SCHEDULE = "cosine"
"""The diffusers schedule both loops use: linear warm-up, then cosine decay to 0."""


def lr_schedule(opt: torch.optim.Optimizer, cfg: VAEConfig | UNetConfig) -> LRScheduler:
    """diffusers' warm-up + cosine schedule over ``cfg.steps`` steps (``cfg.warmup`` warm-up).

    Args:
        opt: The optimizer whose learning rate (``cfg.lr``) is scheduled.
        cfg: The loop's config.

    Returns:
        The scheduler; drive it with :func:`advance_schedule`.
    """
    return get_scheduler(
        LR_SCHEDULE, opt, num_warmup_steps=cfg.warmup, num_training_steps=max(cfg.steps, 1)
    )


def advance_schedule(
    schedule: LRScheduler, step: int, cfg: VAEConfig | UNetConfig, elapsed: float
) -> int:
    """Step the schedule up to the run's progress, in steps.

    The progress is ``step``, or, with a time limit, the share of ``max_minutes`` spent times
    ``cfg.steps`` when that is further along (a slow machine anneals before its time runs out).

    Args:
        schedule: From :func:`lr_schedule`.
        step: The index of the step about to be taken.
        cfg: The loop's config.
        elapsed: Seconds since the loop started.

    Returns:
        The schedule's position (``schedule.last_epoch``).
    """
    target = step
    if cfg.max_minutes > 0:
        target = max(target, min(cfg.steps, int(cfg.steps * elapsed / (60 * cfg.max_minutes))))
    while schedule.last_epoch < target:
        schedule.step()
    return schedule.last_epoch


def _begin_step(
    schedule: LRScheduler, cfg: VAEConfig | UNetConfig, step: int, start: float, name: str, log: Log
) -> bool:
    """Set the step's learning rate; False (and a log line) once the time limit has passed."""
    elapsed = time.monotonic() - start
    if cfg.max_minutes > 0 and elapsed > 60 * cfg.max_minutes:
        log(f"{name}: time limit of {cfg.max_minutes} min reached after {step} steps")
        return False
    advance_schedule(schedule, step, cfg, elapsed)
    return True


def _random_crops(x: torch.Tensor, crop: int, generator: torch.Generator) -> torch.Tensor:
    if crop >= x.shape[-1]:
        return x
    offsets = torch.randint(0, x.shape[-1] - crop + 1, (x.shape[0], 2), generator=generator)
    return torch.stack(
        [im[:, i : i + crop, j : j + crop] for im, (i, j) in zip(x, offsets.tolist(), strict=True)]
    )


def train_vae(
    vae: AutoencoderKL,
    images: torch.Tensor,
    cfg: VAEConfig,
    generator: torch.Generator,
    log: Log = print,
    log_every: int = 50,
) -> list[float]:
    """Train the autoencoder with ``mean|x - x̂| + kl_weight * KL`` (KL per latent element).

    Args:
        vae: The autoencoder (trained in place).
        images: uint8 images ``(N, 3, H, W)``.
        cfg: The VAE config.
        generator: Draws the batches, crops and posterior samples.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.

    Returns:
        The loss of every step taken.
    """
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = lr_schedule(opt, cfg)
    losses: list[float] = []
    start = time.monotonic()
    for step in range(cfg.steps):
        if not _begin_step(schedule, cfg, step, start, "vae", log):
            break
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=generator)
        x = _random_crops(to_model_range(images[idx]), cfg.crop, generator)
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator)).sample
        kl = posterior.kl().mean() / posterior.mean[0].numel()
        loss = (recon - x).abs().mean() + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step == 0:
            rate = (time.monotonic() - start) / (step + 1)
            log(
                f"vae step {step + 1}/{cfg.steps} loss {np.mean(losses[-log_every:]):.4f} "
                f"kl {kl.item():.3f} ({rate:.2f} s/step)"
            )
    vae.eval()
    return losses


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


def training_noise(shape: torch.Size, offset: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise plus, with ``offset`` > 0, a constant per sample and channel ("offset noise").

    On a 16×16 latent the mean of white noise is small (σ = 1/16), so even at the last timestep of
    SD's schedule the noisy latent's mean still shows the image's mean colour, and a model learns
    to read the colour from the noise instead of from the text. The offset (σ = ``offset``) hides
    it; the trained model is sampled with ordinary noise.
    """
    noise = torch.randn(shape, generator=generator)
    if offset > 0:
        noise += offset * torch.randn((*shape[:2], 1, 1), generator=generator)
    return noise


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
) -> list[float]:
    """Train the UNet and the text encoder jointly with the ε-prediction loss.

    Each sample's caption is fg-only, bg-only or both (``data_cfg.caption_weights``), replaced by
    the empty caption with probability ``data_cfg.caption_dropout`` (classifier-free guidance).

    Args:
        unet: The UNet (trained in place; ends with its EMA weights if ``cfg.ema_decay``:
            diffusers' ``EMAModel``, whose first update copies the weights and update n + 1
            blends with decay ``min(ema_decay, (1 + n) / (10 + n))``).
        text_encoder: The text encoder (likewise).
        scheduler: Supplies the noise schedule (``add_noise``).
        latents: Scaled posterior ``(mean, std)`` of every training image.
        data: The training data (caption tokens).
        cfg: The UNet config.
        data_cfg: The data config (caption choice).
        generator: Draws batches, captions, timesteps and noise.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.

    Returns:
        The loss of every step taken.
    """
    params = [*unet.parameters(), *text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = lr_schedule(opt, cfg)
    ema = EMAModel(params, decay=cfg.ema_decay, foreach=True) if cfg.ema_decay > 0 else None
    weights = torch.tensor(data_cfg.caption_weights, dtype=torch.float)
    unet.train()
    text_encoder.train()
    mean, std = latents
    losses: list[float] = []
    start = time.monotonic()
    for step in range(cfg.steps):
        if not _begin_step(schedule, cfg, step, start, "unet", log):
            break
        b = cfg.batch_size
        idx = torch.randint(0, mean.shape[0], (b,), generator=generator)
        z0 = mean[idx] + std[idx] * torch.randn(mean[idx].shape, generator=generator)
        kind = torch.multinomial(weights, b, replacement=True, generator=generator)
        ids = data.tokens[idx, kind]
        ids[torch.rand(b, generator=generator) < data_cfg.caption_dropout] = data.empty
        noise = training_noise(z0.shape, cfg.offset_noise, generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator)
        pred = unet(scheduler.add_noise(z0, noise, t), t, text_encoder(ids)[0]).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if ema is not None:
            ema.step(params)
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step == 0:
            rate = (time.monotonic() - start) / (step + 1)
            log(
                f"unet step {step + 1}/{cfg.steps} loss {np.mean(losses[-log_every:]):.4f} "
                f"({rate:.2f} s/step)"
            )
    if ema is not None:
        ema.copy_to(params)
    unet.eval()
    text_encoder.eval()
    return losses
