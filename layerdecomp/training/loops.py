"""The two training loops: the VAE (L1 + KL), then the UNet and text encoder (ε-prediction).

Both loops are plain AdamW loops with diffusers' linear warm-up + cosine decay schedule
(:func:`diffusers.optimization.get_scheduler`). The schedule is advanced to the run's progress
``max(step, elapsed / max_minutes × steps)``, so a time-limited run still anneals before it stops.
The UNet loop keeps an exponential moving average of the weights with diffusers'
:class:`~diffusers.training_utils.EMAModel`.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from transformers import CLIPTextModel, CLIPTokenizer

from layerdecomp.data.composites import Composite, make_composite
from layerdecomp.data.pairs import PairComposite, make_pair
from layerdecomp.training.config import DataConfig, UNetConfig, VAEConfig
from layerdecomp.training.progress import Budget, Log, Progress, Stepper, autocast, lr_schedule

PAIR_CHOICE = 7
"""Stream id (after the data seed) of the draw that picks which training samples are pairs."""


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
    is_pair = np.random.default_rng([cfg.seed, PAIR_CHOICE]).random(n) < cfg.pairs
    jobs = [(i, bool(pair), split, cfg.size, cfg.seed) for i, pair in enumerate(is_pair)]
    workers = cfg.workers if cfg.workers > 0 else os.cpu_count() or 1
    if workers == 1:
        samples = [_render(job) for job in jobs]
    else:  # spawn: the parent may hold threads (torch) that a fork would copy half-way
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            samples = list(pool.map(_render, jobs, chunksize=max(1, n // (8 * workers))))
    images = torch.from_numpy(np.stack([c.image for c in samples])).permute(0, 3, 1, 2)
    texts = [t for c in samples for t in _captions(c)]
    tokens = tokenize(tokenizer, texts).view(n, 3, -1)
    return TrainingData(images.contiguous(), tokens, tokenize(tokenizer, [""])[0])


def _render(job: tuple[int, bool, str, int, int]) -> Composite | PairComposite:
    index, pair, split, size, seed = job
    make = make_pair if pair else make_composite
    return make(index, split, size, seed)  # type: ignore[arg-type]


def _captions(sample: Composite | PairComposite) -> tuple[str, str, str]:
    """fg-only, bg-only and both; a pair's objects are joined with "and", front first."""
    if isinstance(sample, PairComposite):
        return " and ".join(sample.captions_fg), sample.caption_bg, sample.caption
    return sample.caption_fg, sample.caption_bg, sample.caption


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` to float ``[-1, 1]``."""
    return images.float() / 127.5 - 1.0


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
    progress: Progress | None = None,
    budget: Budget | None = None,
    precision: str = "fp32",
) -> list[float]:
    """Train the autoencoder with ``mean|x - x̂| + kl_weight * KL`` (KL per latent element).

    Args:
        vae: The autoencoder (trained in place).
        images: uint8 images ``(N, 3, H, W)``.
        cfg: The VAE config.
        generator: A CPU generator; draws the batches, crops and posterior samples.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.
        progress: Where to start and what to update (a fresh one if None); its ``states``
            resume the optimizer and schedule.
        budget: What this call may spend (none: unlimited).
        precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast.

    Returns:
        The loss of every step taken (over all calls).
    """
    progress = Progress() if progress is None else progress
    vae.train()
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg.lr, weight_decay=0.0)
    schedule = lr_schedule(opt, cfg)
    if progress.states:
        opt.load_state_dict(progress.states["optimizer"])
        schedule.load_state_dict(progress.states["schedule"])
    stepper = Stepper("vae", cfg, progress, budget, log)
    device = images.device
    while stepper.begin(schedule):
        idx = torch.randint(0, images.shape[0], (cfg.batch_size,), generator=generator)
        x = _random_crops(to_model_range(images[idx.to(device)]), cfg.crop, generator)
        with autocast(device, precision):
            posterior = vae.encode(x).latent_dist
            recon = vae.decode(posterior.sample(generator)).sample
        kl = posterior.kl().float().mean() / posterior.mean[0].numel()
        loss = (recon.float() - x).abs().mean() + cfg.kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        stepper.end(loss.item())
        step = progress.step
        if step % log_every == 0 or step == 1:
            rate = (stepper.elapsed()) / step
            log(
                f"vae step {step}/{cfg.steps} loss {np.mean(progress.losses[-log_every:]):.4f} "
                f"kl {kl.item():.3f} ({rate:.2f} s/step)"
            )
    stepper.stop(optimizer=opt.state_dict(), schedule=schedule.state_dict())
    vae.eval()
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
    progress: Progress | None = None,
    budget: Budget | None = None,
    precision: str = "fp32",
    compile_backend: str = "",
) -> list[float]:
    """Train the UNet and the text encoder jointly with the ε-prediction loss.

    Each sample's caption is fg-only, bg-only or both (``data_cfg.caption_weights``), replaced by
    the empty caption with probability ``data_cfg.caption_dropout`` (classifier-free guidance).

    Args:
        unet: The UNet (trained in place; ends with its EMA weights once finished if
            ``cfg.ema_decay``: diffusers' ``EMAModel``, whose first update copies the weights
            and update n + 1 blends with decay ``min(ema_decay, (1 + n) / (10 + n))``).
        text_encoder: The text encoder (likewise).
        scheduler: Supplies the noise schedule (``add_noise``).
        latents: Scaled posterior ``(mean, std)`` of every training image.
        data: The training data (caption tokens).
        cfg: The UNet config.
        data_cfg: The data config (caption choice).
        generator: A CPU generator; draws batches, captions, timesteps and noise.
        log: Called with a progress line every ``log_every`` steps.
        log_every: Logging interval.
        progress: Where to start and what to update (a fresh one if None); its ``states``
            resume the optimizer, schedule and EMA. Until ``done``, the models keep their raw
            (not EMA) weights, so that a later call continues from them.
        budget: What this call may spend (none: unlimited).
        precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast.
        compile_backend: A ``torch.compile`` backend for the UNet's forward ("" = eager).

    Returns:
        The loss of every step taken (over all calls).
    """
    progress = Progress() if progress is None else progress
    params = [*unet.parameters(), *text_encoder.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = lr_schedule(opt, cfg)
    ema = EMAModel(params, decay=cfg.ema_decay, foreach=True) if cfg.ema_decay > 0 else None
    if progress.states:
        opt.load_state_dict(progress.states["optimizer"])
        schedule.load_state_dict(progress.states["schedule"])
        if ema is not None:
            ema.load_state_dict(progress.states["ema"])
    forward = torch.compile(unet, backend=compile_backend) if compile_backend else unet
    weights = torch.tensor(data_cfg.caption_weights, dtype=torch.float)
    unet.train()
    text_encoder.train()
    mean, std = latents
    device = mean.device
    stepper = Stepper("unet", cfg, progress, budget, log)
    while stepper.begin(schedule):
        b = cfg.batch_size
        idx = torch.randint(0, mean.shape[0], (b,), generator=generator)
        shape = (b, *mean.shape[1:])
        draw = torch.randn(shape, generator=generator).to(device)
        z0 = mean[idx.to(device)] + std[idx.to(device)] * draw
        kind = torch.multinomial(weights, b, replacement=True, generator=generator)
        ids = data.tokens[idx.to(data.tokens.device), kind.to(data.tokens.device)]
        ids[(torch.rand(b, generator=generator) < data_cfg.caption_dropout).to(ids.device)] = (
            data.empty
        )
        noise = training_noise(torch.Size(shape), cfg.offset_noise, generator).to(device)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=generator)
        t = t.to(device)
        with autocast(device, precision):
            pred = forward(scheduler.add_noise(z0, noise, t), t, text_encoder(ids)[0]).sample
        loss = torch.nn.functional.mse_loss(pred.float(), noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        opt.step()
        if ema is not None:
            ema.step(params)
        stepper.end(loss.item())
        step = progress.step
        if step % log_every == 0 or step == 1:
            rate = stepper.elapsed() / step
            log(
                f"unet step {step}/{cfg.steps} loss {np.mean(progress.losses[-log_every:]):.4f} "
                f"({rate:.2f} s/step)"
            )
    states = {"optimizer": opt.state_dict(), "schedule": schedule.state_dict()}
    if ema is not None:
        states["ema"] = ema.state_dict()
    stepper.stop(**states)
    if progress.done and ema is not None:
        ema.copy_to(params)
    unet.eval()
    text_encoder.eval()
    return progress.losses
