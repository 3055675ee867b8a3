"""The layer-inference engine: foreground, background and a soft mask from two prompts (§4.2).

Given an image x and prompts for two layers, find layers x¹, x² and a mask m with
``x = m·x¹ + (1−m)·x²``. Each iteration, for each layer l, K binary masks keep the pixels that m
assigns to l (Bernoulli(m) for the foreground, Bernoulli(1−m) for the background), and every
cell is held out of at least one of a layer's K samples; the image is inpainted from each kept
set under that layer's prompt with inexact-Newton iterations at a single noise level (the x̂0 of
a perturbed x_t, not a full sampling run). R runs start from different random masks, and all
2RK samples go through the denoiser as one batch.
Each layer becomes a per-pixel Gaussian, fitted to the samples in which that pixel was *held
out* (so a layer is scored on how well its other pixels predict it), its variance calibrated by
the layer's own prediction error; m moves toward the posterior responsibility of the foreground
layer (EM for a two-component mixture, the foreground's share of the image as the prior, the
evidence pooled over a pixel's neighbours). A last check swaps a partition if the background
prompt denoises its foreground side better than the foreground prompt does, and keeps the run
whose partition agrees best with the prompts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from solvers import add_noise, refine

from ..constraints import Mask
from .recompose import exact_layers, recompose
from .stats import (
    keep_masks,
    layer_stats,
    log_likelihood,
    pool_evidence,
    prior_log_odds,
    residual_variance,
    select_run,
)


@dataclass(frozen=True)
class DecomposeConfig:
    """Parameters of :func:`decompose` (recorded with every run).

    Attributes:
        iterations: mask updates at most.
        samples: K samples per layer and iteration.
        noise_level: the single noise level, as a fraction of the training timesteps.
        newton_iters: inexact-Newton iterations per sample (λ linear 0.5 → 0.1).
        guidance: classifier-free guidance w for the layer prompts.
        negative_prompt: the unconditional prompt.
        variance_floor: added to each layer's per-pixel variance (pixel values in [−1, 1]).
        damping: step of the mask toward the responsibility (1 = jump).
        smoothing: σ in pixels of a Gaussian blur of the per-pixel log-likelihood ratio before
            the responsibility is taken (0 = none).
        prior: ``"uniform"`` (responsibility from the likelihoods alone), ``"mask"`` (the
            current mask as a per-pixel prior) or ``"mixture"`` (the foreground's share of the
            image, the mean of the mask, as the prior: a Gaussian mixture's EM update).
        min_share: the mixture prior's share is kept in [min_share, 1 − min_share], so that a
            layer that has lost most pixels is not pushed out of the rest by the prior alone.
        calibrate: add each layer's mean squared prediction error over the pixels it owns to
            its per-pixel variance (see :func:`_residual_variance`).
        tol: stop once the mean absolute mask change falls below this.
        orient: after the updates, swap the mask if the background prompt explains the
            foreground side better than the foreground prompt (per-cell denoising errors).
        orient_levels: noise levels (one batched call each) for that check.
        final_samples: samples averaged for the final layers.
        restarts: independent runs from different random masks, batched together; the one
            whose partition agrees best with the prompts (the orientation check's per-cell
            errors) is kept.
    """

    iterations: int = 12
    samples: int = 5
    noise_level: float = 0.35
    newton_iters: int = 3
    guidance: float = 0.0
    negative_prompt: str = ""
    variance_floor: float = 2e-3
    damping: float = 0.7
    smoothing: float = 1.0
    prior: Literal["uniform", "mask", "mixture"] = "mixture"
    min_share: float = 0.2
    calibrate: bool = True
    tol: float = 2e-3
    orient: bool = True
    orient_levels: int = 8
    final_samples: int = 4
    restarts: int = 3

    def __post_init__(self) -> None:
        for name in ("iterations", "samples", "newton_iters", "final_samples", "restarts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name}: expected ≥ 1, got {getattr(self, name)}")
        if not 0.0 < self.noise_level < 1.0:
            raise ValueError(f"noise_level: expected a value in (0, 1), got {self.noise_level}")
        if not 0.0 < self.damping <= 1.0:
            raise ValueError(f"damping: expected a value in (0, 1], got {self.damping}")
        if self.variance_floor <= 0:
            raise ValueError(f"variance_floor: expected > 0, got {self.variance_floor}")
        if self.guidance < 0 or self.smoothing < 0 or self.tol < 0:
            raise ValueError("guidance, smoothing and tol must be ≥ 0")
        if not 0.0 < self.min_share <= 0.5:
            raise ValueError(f"min_share: expected a value in (0, 0.5], got {self.min_share}")
        if self.prior not in ("uniform", "mask", "mixture"):
            raise ValueError(f"prior: {self.prior!r} is not one of 'uniform', 'mask', 'mixture'")


@dataclass
class Layers:
    """Result of :func:`decompose`; images are (1, 3, H, W) in [−1, 1], the mask (1, 1, H, W).

    ``recompose(mask, foreground, background)`` reproduces the input image. ``history`` holds the
    largest mean mask change of every update (over the restarts); ``swapped`` tells whether the
    orientation check swapped the partition the updates found, ``restart`` which run was kept.
    """

    foreground: torch.Tensor
    background: torch.Tensor
    mask: torch.Tensor
    history: list[float] = field(default_factory=list)
    swapped: bool = False
    restart: int = 0
    nfe: int = 0
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def recomposition(self) -> torch.Tensor:
        return recompose(self.mask, self.foreground, self.background)


def _cells(mask: torch.Tensor, factor: int) -> torch.Tensor:
    return mask if factor == 1 else F.avg_pool2d(mask, factor)


def _pixels(cells: torch.Tensor, factor: int) -> torch.Tensor:
    return cells if factor == 1 else F.interpolate(cells, scale_factor=factor, mode="nearest")


class _Sampler:
    """Draws inpainted x̂0 samples for both layers in one batch."""

    def __init__(self, backend, image, prompts, config: DecomposeConfig, generator):
        self.backend, self.config, self.generator = backend, config, generator
        self.factor = backend.factor
        self.denoiser = backend.denoiser(list(prompts), config.negative_prompt, config.guidance)
        scheduler = self.denoiser.scheduler
        self.scheduler = scheduler
        self.t = int(round(config.noise_level * (scheduler.config.num_train_timesteps - 1)))
        with torch.no_grad():
            self.y = backend.encode(image).float()
        self.nfe = 0

    @torch.no_grad()
    def prompt_errors(self, levels: int) -> torch.Tensor:
        """Per-cell denoising error of the image under each prompt (2, 1, h, w).

        The image latent is noised to ``levels`` noise levels spread over (0.2, 0.9) with the same
        noise for both prompts, and each prompt's x̂0 is compared with the latent: the prompt that
        describes a region denoises it better (a diffusion classifier, per cell).
        """
        steps = self.scheduler.config.num_train_timesteps
        times = torch.linspace(0.2, 0.9, levels) * (steps - 1)
        errors = torch.zeros(2, 1, *self.y.shape[-2:], device=self.y.device)
        for t in times.round().long().tolist():
            noise = torch.randn(self.y.shape, generator=self.generator, device=self.y.device)
            x_t = add_noise(self.y, noise, t, self.scheduler).expand(2, -1, -1, -1)
            x0 = self.denoiser(x_t, t)
            errors += (x0 - self.y).pow(2).sum(1, keepdim=True) / levels
        self.nfe += levels
        return errors

    def draw(self, keep: torch.Tensor) -> torch.Tensor:
        """Inpaint ``y`` from the cells each row of ``keep`` (2n, 1, h, w) holds; decode to pixels.

        The first n rows use the first prompt, the rest the second (one batched call).
        """
        y = self.y.expand(keep.shape[0], -1, -1, -1)
        kept = keep.sum((2, 3), keepdim=True).clamp_min(1.0)
        fill = (keep * y).sum((2, 3), keepdim=True) / kept  # a neutral start for the holes
        noise = torch.randn(y.shape, generator=self.generator, device=y.device, dtype=y.dtype)
        x_t = add_noise(keep * y + (1 - keep) * fill, noise, self.t, self.scheduler)
        out = refine(
            self.denoiser,
            Mask.in_model_space(y, keep),
            x_t,
            self.t,
            iterations=self.config.newton_iters,
        )
        self.nfe += out.nfe
        with torch.no_grad():
            return self.backend.decode(out.x0).float().clamp(-1, 1)


def decompose(
    backend,
    image: torch.Tensor,
    fg_prompt: str,
    bg_prompt: str,
    *,
    config: DecomposeConfig | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    init_mask: torch.Tensor | None = None,
    **overrides,
) -> Layers:
    """Decompose ``image`` into a foreground, a background and a soft mask (§4.2).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: (1, 3, H, W) in [−1, 1]; sides a multiple of ``backend.size_multiple``.
        fg_prompt, bg_prompt: the layers' prompts.
        config: the parameters (defaults: :class:`DecomposeConfig`); keyword ``overrides``
            replace single fields.
        generator: seeds the mask initialisation, the Bernoulli masks and the noise.
        callback: called after every iteration with a dict (iteration, mask: the R runs' masks
            (R, 1, H, W), change, nfe).
        disable: disable the progress bar.
        init_mask: (1, 1, H, W) in [0, 1] to start from instead of a uniformly random mask (every
            run starts from it; they differ by their samples only).
    """
    config = config or DecomposeConfig()
    if overrides:
        config = DecomposeConfig(**{**asdict(config), **overrides})
    for name, prompt in (("fg_prompt", fg_prompt), ("bg_prompt", bg_prompt)):
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{name}: a layer needs a non-empty prompt")
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image: expected a (1, 3, H, W) tensor, got {tuple(image.shape)}")
    multiple = getattr(backend, "size_multiple", backend.factor)
    if any(s % multiple for s in image.shape[-2:]):
        raise ValueError(f"image: sides {tuple(image.shape[-2:])} must be multiples of {multiple}")

    start = time.perf_counter()
    image = image.float().to(getattr(backend, "device", image.device))
    sampler = _Sampler(backend, image, (fg_prompt, bg_prompt), config, generator)
    k, runs, factor = config.samples, config.restarts, sampler.factor
    shape = (1, 1, *image.shape[-2:])
    if init_mask is None:
        mask = torch.rand((runs, *shape[1:]), generator=generator, device=image.device)
        mask = mask * 0.98 + 0.01
    elif tuple(init_mask.shape) != shape:
        raise ValueError(f"init_mask: expected shape {shape}, got {tuple(init_mask.shape)}")
    else:
        mask = init_mask.float().to(image.device).clamp(0.01, 0.99).expand(runs, -1, -1, -1)
    history: list[float] = []
    from tqdm.auto import trange

    for iteration in trange(config.iterations, desc="layers", disable=disable, leave=False):
        keep = keep_masks(_cells(mask, factor), k, generator)
        samples = sampler.draw(keep).unflatten(0, (2, runs, k))
        held_out = (1 - _pixels(keep, factor)).unflatten(0, (2, runs, k))
        stats = [layer_stats(samples[i], held_out[i], config.variance_floor) for i in range(2)]
        if config.calibrate:
            stats = [
                (mean, var + residual_variance(image, mean, weight))
                for (mean, var), weight in zip(stats, (mask, 1 - mask), strict=True)
            ]
        log_ratio = log_likelihood(image, *stats[0]) - log_likelihood(image, *stats[1])
        log_ratio = log_ratio + prior_log_odds(mask, config.prior, config.min_share)
        # pool the evidence of neighbouring pixels; edges stay sharp
        responsibility = torch.sigmoid(pool_evidence(log_ratio, config.smoothing))
        new_mask = (1 - config.damping) * mask + config.damping * responsibility
        change = (new_mask - mask).abs().mean((1, 2, 3)).max().item()  # the slowest run's
        mask = new_mask.clamp(0, 1)
        history.append(change)
        if callback is not None:
            callback({"iteration": iteration, "mask": mask, "change": change, "nfe": sampler.nfe})
        if change < config.tol:
            break

    swapped, chosen = False, 0
    if config.orient or runs > 1:
        # Which side of each partition is which layer: the side the foreground prompt denoises
        # better than the background prompt (EM alone can settle on the swapped partition); of
        # several runs, the one whose partition agrees best with the prompts.
        errors = sampler.prompt_errors(config.orient_levels)
        gain = errors[1] - errors[0]  # > 0 where the foreground prompt explains the cell better
        chosen, swapped = select_run(gain, _cells(mask, factor), config.orient)
    mask = mask[chosen : chosen + 1]
    if swapped:
        mask = 1 - mask

    # Final layers: each inpainted from the cells the mask gives it outright, averaged.
    n = config.final_samples
    cells = _cells(mask, factor)
    keep = torch.cat([(cells > 0.5).expand(n, -1, -1, -1), (cells < 0.5).expand(n, -1, -1, -1)])
    samples = sampler.draw(keep.float())
    fg, bg = samples[:n].mean(0, keepdim=True), samples[n:].mean(0, keepdim=True)
    fg, bg = exact_layers(image, mask, fg, bg)
    return Layers(
        foreground=fg,
        background=bg,
        mask=mask,
        history=history,
        swapped=swapped,
        restart=chosen,
        nfe=sampler.nfe,
        seconds=time.perf_counter() - start,
        config={**asdict(config), "timestep": sampler.t},
    )


__all__ = ["DecomposeConfig", "Layers", "decompose"]
