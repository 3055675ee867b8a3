"""The layer-inference engine: foreground, background and a soft mask from two prompts (§4.2).

Given an image x and prompts for two layers, find layers x¹, x² and a mask m with
``x = m·x¹ + (1−m)·x²``. Each iteration, for each layer l, K binary masks keep the pixels that m
assigns to l (Bernoulli(m) for the foreground, Bernoulli(1−m) for the background); the image is
inpainted from each kept set under that layer's prompt with inexact-Newton iterations at a single
noise level (the x̂0 of a perturbed x_t, not a full sampling run). All 2K samples go through the
denoiser as one batch. Each layer becomes a per-pixel Gaussian, fitted to the samples in which
that pixel was *held out* (so a layer is scored on how well its other pixels predict it), and m
moves toward the posterior responsibility of the foreground layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import kornia
import torch
import torch.nn.functional as F
from PIL import Image

from solvers import add_noise, refine

from .constraints import Mask, recompose
from .generate import round_up
from .io import image_to_tensor


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
        smoothing: σ in pixels of a Gaussian blur of the mask update (0 = none).
        prior: ``"uniform"`` (responsibility from the likelihoods alone) or ``"mask"`` (with the
            current mask as the prior).
        tol: stop once the mean absolute mask change falls below this.
        final_samples: samples averaged for the final layers.
    """

    iterations: int = 8
    samples: int = 5
    noise_level: float = 0.5
    newton_iters: int = 3
    guidance: float = 2.0
    negative_prompt: str = ""
    variance_floor: float = 2e-3
    damping: float = 0.7
    smoothing: float = 0.0
    prior: Literal["uniform", "mask"] = "uniform"
    tol: float = 2e-3
    final_samples: int = 4

    def __post_init__(self) -> None:
        for name in ("iterations", "samples", "newton_iters", "final_samples"):
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
        if self.prior not in ("uniform", "mask"):
            raise ValueError(f"prior: {self.prior!r} is not one of 'uniform', 'mask'")


@dataclass
class Layers:
    """Result of :func:`decompose`; images are (1, 3, H, W) in [−1, 1], the mask (1, 1, H, W).

    ``recompose(mask, foreground, background)`` reproduces the input image.
    """

    foreground: torch.Tensor
    background: torch.Tensor
    mask: torch.Tensor
    history: list[float] = field(default_factory=list)
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


def _layer_stats(samples, held_out, floor):
    """Per-pixel mean and variance of samples (K, 3, H, W), weighted toward held-out pixels."""
    weights = held_out + 1e-3
    total = weights.sum(0)
    mean = (weights * samples).sum(0) / total
    var = (weights * (samples - mean) ** 2).sum(0) / total + floor
    return mean, var


def _log_likelihood(image, mean, var):
    return (-0.5 * (image - mean) ** 2 / var - 0.5 * var.log()).sum(1, keepdim=True)


def exact_layers(image, mask, fg, bg):
    """Layers close to the estimates ``fg``, ``bg`` with ``m·fg + (1−m)·bg = image`` exactly.

    Per pixel, ``fg = x + (1−m)·d`` and ``bg = x − m·d`` satisfy the blend for any d; d is the
    least-squares fit to the estimates, shrunk where needed to stay in [−1, 1]. Where m is 1 (0),
    the foreground (background) is the input itself and the other layer keeps its estimate.
    """
    d = ((1 - mask) * (fg - image) - mask * (bg - image)) / ((1 - mask) ** 2 + mask**2)

    def room(step):  # the largest s in [0, 1] with image + s·step inside [−1, 1]
        up = torch.where(step > 0, (1 - image) / step.clamp_min(1e-12), 1.0)
        down = torch.where(step < 0, (-1 - image) / step.clamp_max(-1e-12), 1.0)
        return torch.minimum(up, down).clamp(0, 1)

    s = torch.minimum(room((1 - mask) * d), room(-mask * d))
    return image + s * (1 - mask) * d, image - s * mask * d


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
        callback: called after every iteration with a dict (iteration, mask, change, nfe).
        disable: disable the progress bar.
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
    k, factor = config.samples, sampler.factor
    shape = (1, 1, *image.shape[-2:])
    mask = torch.rand(shape, generator=generator, device=image.device) * 0.98 + 0.01
    history: list[float] = []
    from tqdm.auto import trange

    for iteration in trange(config.iterations, desc="layers", disable=disable, leave=False):
        cells = _cells(mask, factor)
        keep_prob = torch.cat([cells.expand(k, -1, -1, -1), (1 - cells).expand(k, -1, -1, -1)])
        keep = torch.bernoulli(keep_prob, generator=generator)
        samples = sampler.draw(keep)
        held_out = 1 - _pixels(keep, factor)
        stats = [
            _layer_stats(
                samples[i * k : (i + 1) * k], held_out[i * k : (i + 1) * k], config.variance_floor
            )
            for i in range(2)
        ]
        log_ratio = _log_likelihood(image, *stats[0]) - _log_likelihood(image, *stats[1])
        if config.prior == "mask":
            log_ratio = log_ratio + torch.logit(mask.clamp(1e-4, 1 - 1e-4))
        responsibility = torch.sigmoid(log_ratio)
        if config.smoothing > 0:
            sigma = float(config.smoothing)
            size = 2 * int(3 * sigma) + 1
            responsibility = kornia.filters.gaussian_blur2d(
                responsibility, (size, size), (sigma, sigma), border_type="replicate"
            )
        new_mask = (1 - config.damping) * mask + config.damping * responsibility
        change = (new_mask - mask).abs().mean().item()
        mask = new_mask.clamp(0, 1)
        history.append(change)
        if callback is not None:
            callback({"iteration": iteration, "mask": mask, "change": change, "nfe": sampler.nfe})
        if change < config.tol:
            break

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
        nfe=sampler.nfe,
        seconds=time.perf_counter() - start,
        config={**asdict(config), "timestep": sampler.t},
    )


def decompose_image(
    backend,
    image: Image.Image,
    fg_prompt: str,
    bg_prompt: str,
    *,
    seed: int = 0,
    config: DecomposeConfig | None = None,
    disable: bool | None = None,
    **overrides,
) -> Layers:
    """:func:`decompose` for an RGB PIL image of any size; the layers come back at its size.

    The image is resized (antialiased) to the next multiple of the model's size multiple, and the
    layers are resized back and re-fitted so that they recompose the original exactly.
    """
    width, height = image.size
    multiple = getattr(backend, "size_multiple", backend.factor)
    work = (round_up(height, multiple), round_up(width, multiple))
    original = image_to_tensor(image)
    pixels = original if work == (height, width) else _resize(original, work)
    generator = torch.Generator(device=getattr(backend, "device", "cpu")).manual_seed(seed)
    layers = decompose(
        backend,
        pixels,
        fg_prompt,
        bg_prompt,
        config=config,
        generator=generator,
        disable=disable,
        **overrides,
    )
    if work != (height, width):
        mask = _resize(layers.mask, (height, width)).clamp(0, 1)
        fg = _resize(layers.foreground, (height, width)).clamp(-1, 1)
        bg = _resize(layers.background, (height, width)).clamp(-1, 1)
        layers.mask = mask
        layers.foreground, layers.background = exact_layers(original, mask, fg, bg)
    else:
        layers.foreground, layers.background = exact_layers(
            original, layers.mask.cpu(), layers.foreground.cpu(), layers.background.cpu()
        )
    layers.config["seed"] = seed
    layers.config["work_size"] = [work[1], work[0]]
    return layers


def _resize(tensor: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return kornia.geometry.transform.resize(
        tensor.float().cpu(), size, interpolation="bilinear", antialias=True
    )


__all__ = ["DecomposeConfig", "Layers", "decompose", "decompose_image", "exact_layers"]
