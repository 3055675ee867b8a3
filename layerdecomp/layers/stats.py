"""The layer engine's statistics (§4.2): keep masks, per-pixel Gaussians, the EM update, selection.

Plain functions over tensors, used by :func:`layerdecomp.layers.engine.decompose`; each one is
described with its reason in ``docs/algorithm.md`` ("The layer engine").
"""

from __future__ import annotations

import kornia
import torch

EVIDENCE_CAP = 8.0
"""Per-pixel log-likelihood ratios are clipped to ±this before pooling, so that one pixel's
overwhelming evidence cannot decide its neighbours."""


def keep_masks(cells: torch.Tensor, k: int, generator) -> torch.Tensor:
    """K keep masks per layer and mask (2RK, 1, h, w) for R masks ``cells`` (R, 1, h, w):
    Bernoulli(m) for the foreground (rows r·K … r·K + K − 1), Bernoulli(1 − m) for the background
    (the same rows after R·K), and each cell is held out of at least one sample of each layer.

    Each cell draws a fold in [0, K) and is dropped from that sample, so every pixel of every layer
    is predicted from its context at least once: without it, a cell that a layer keeps in all K
    samples would be scored by the layer's reconstruction of its own kept pixel, and the layer
    holding more of the image would win ever more of it.
    """
    runs = cells.shape[0]
    per_sample = cells.repeat_interleave(k, dim=0)
    keep = torch.bernoulli(torch.cat([per_sample, 1 - per_sample]), generator=generator)
    rows = torch.arange(k, device=cells.device).repeat(runs).view(runs * k, 1, 1, 1)
    for layer in range(2):
        fold = torch.randint(0, k, cells.shape, generator=generator, device=cells.device)
        held = fold.repeat_interleave(k, dim=0) == rows
        keep[layer * runs * k : (layer + 1) * runs * k] *= (~held).to(keep.dtype)
    return keep


def layer_stats(samples, held_out, floor):
    """Per-pixel mean and variance (R, 3, H, W) of samples (R, K, 3, H, W), weighted toward
    held-out pixels."""
    weights = held_out + 1e-3
    total = weights.sum(1)
    mean = (weights * samples).sum(1) / total
    var = (weights * (samples - mean.unsqueeze(1)) ** 2).sum(1) / total + floor
    return mean, var


def residual_variance(image, mean, weight):
    """The layer's own prediction error, σ² = Σ w·(x − μ)² / (3·Σ w) over the pixels it owns.

    The spread of K samples that share most of their context underestimates how far the layer's
    prediction is from the pixel; this is the EM estimate of a Gaussian mixture component's
    variance, added to the sample variance so both layers' likelihoods are calibrated alike.
    """
    error = ((image - mean) ** 2 * weight).sum((1, 2, 3), keepdim=True)
    return error / (3 * weight.sum((1, 2, 3), keepdim=True)).clamp_min(1e-6)


def prior_log_odds(mask: torch.Tensor, prior: str, min_share: float) -> torch.Tensor:
    """The prior log-odds of the foreground for masks (R, 1, H, W).

    ``prior`` is ``"mask"`` (the mask itself, per pixel), ``"mixture"`` (the foreground's share of
    the image, kept in [min_share, 1 − min_share]) or ``"uniform"`` (0).
    """
    if prior == "mask":
        return torch.logit(mask.clamp(1e-4, 1 - 1e-4))
    if prior == "mixture":
        share = mask.mean((1, 2, 3), keepdim=True)
        return torch.logit(share.clamp(min_share, 1 - min_share))
    return torch.zeros_like(mask[:, :, :1, :1])


def log_likelihood(image, mean, var):
    return (-0.5 * (image - mean) ** 2 / var - 0.5 * var.log()).sum(1, keepdim=True)


def select_run(gain: torch.Tensor, cells: torch.Tensor, orient: bool) -> tuple[int, bool]:
    """The run (of R masks ``cells``, (R, 1, h, w)) whose partition agrees best with the prompts,
    and whether to swap it.

    A run's agreement is Σ gain·(2m − 1), ``gain`` (1, h, w) being > 0 where the foreground
    prompt denoises a cell better: high when the foreground side is where the foreground prompt
    fits. With ``orient``, a run found the wrong way round counts by its swapped agreement.
    """
    agreement = (gain * (2 * cells - 1)).sum((1, 2, 3))
    flip = agreement < 0 if orient else torch.zeros_like(agreement, dtype=torch.bool)
    chosen = int(torch.where(flip, -agreement, agreement).argmax())
    return chosen, bool(flip[chosen])


def pool_evidence(log_ratio: torch.Tensor, sigma: float) -> torch.Tensor:
    """Pool each pixel's log-likelihood ratio with its neighbours' (Gaussian, σ pixels).

    The ratios are clipped to ±:data:`EVIDENCE_CAP` first; σ = 0 returns them unchanged.
    """
    if sigma <= 0:
        return log_ratio
    log_ratio = log_ratio.clamp(-EVIDENCE_CAP, EVIDENCE_CAP)
    size = 2 * int(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(
        log_ratio, (size, size), (float(sigma), float(sigma)), border_type="replicate"
    )
