"""The layer engine's statistics (§4.2): keep masks, per-pixel Gaussians, the EM update, selection.

Plain functions over tensors, used by :func:`layerdecomp.layers.engine.decompose`; each one is
described with its reason in ``docs/algorithm.md`` ("The layer engine").
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import kornia
import numpy as np
import torch
import torch.nn.functional as F

EVIDENCE_CAP = 8.0
"""Per-pixel log-likelihood ratios are clipped to ±this before pooling, so that one pixel's
overwhelming evidence cannot decide its neighbours."""


def keep_masks(cells: torch.Tensor, k: int, generator) -> torch.Tensor:
    """S = ``k`` keep masks per layer and run, one per sample, (L·R·S, 1, h, w) for the shares
    ``cells`` (R, L, h, w): Bernoulli(m_l) for layer l (rows l·R·S + r·S … l·R·S + r·S + S − 1),
    and each cell is held out of at least one sample of each layer.

    Each cell draws a fold in [0, S) and is dropped from that sample, so every pixel of every layer
    is predicted from its context at least once: without it, a cell that a layer keeps in all S
    samples would be scored by the layer's reconstruction of its own kept pixel, and the layer
    holding more of the image would win ever more of it.
    """
    runs, count = cells.shape[:2]
    shares = cells.transpose(0, 1).reshape(count * runs, 1, *cells.shape[-2:])
    keep = torch.bernoulli(shares.repeat_interleave(k, dim=0), generator=generator)
    rows = torch.arange(k, device=cells.device).repeat(runs).view(runs * k, 1, 1, 1)
    for layer in range(count):
        fold = torch.randint(
            0, k, (runs, 1, *cells.shape[-2:]), generator=generator, device=cells.device
        )
        held = fold.repeat_interleave(k, dim=0) == rows
        keep[layer * runs * k : (layer + 1) * runs * k] *= (~held).to(keep.dtype)
    return keep


def anchor_to_kept(samples, image, keep, factor):
    """Decoded samples (B, 3, H, W) shifted by their mean error over the cells they kept, away
    from the holes.

    ``keep`` (B, 1, H / factor, W / factor) marks the latent cells each sample was inpainted
    from. The shift is per sample and channel, ``mean of (image − sample)`` over the pixels of the
    kept cells whose eight neighbours are kept too. A VAE decoder normalises over the whole image
    (group norms, the mid-block's attention), so the content of a hole moves the colours of every
    pixel it decodes, kept ones included: a cast that the engine would read as the layer
    mispredicting its held-out pixels. The pixels next to a hole are left out because they carry
    the hole's own content (a decoder's convolutions reach a few pixels across a cell's edge):
    counted in, they would shift the sample toward what the image holds in the hole, and a layer
    would predict pixels it was meant to guess. A sample with no such cell is unchanged.
    """
    inner = 1 - F.max_pool2d(1 - keep, 3, 1, 1)
    if factor > 1:
        inner = F.interpolate(inner, scale_factor=factor, mode="nearest")
    kept = inner.sum((2, 3), keepdim=True)
    shift = ((image - samples) * inner).sum((2, 3), keepdim=True) / kept.clamp_min(1.0)
    return (samples + shift).clamp(-1, 1)


def layer_stats(samples, held_out, floor, memory=None, decay=0.0):
    """Per-pixel mean and variance (R, 3, H, W) of samples (R, S, 3, H, W), weighted toward
    held-out pixels, and the weighted sums behind them (None when ``decay`` is 0).

    With ``memory`` (the sums an earlier update returned) and ``decay`` > 0, the earlier updates'
    samples count too, each update's by ``decay`` times the one after it: a layer scored on two
    samples an update is then scored on about 2 / (1 − decay) of them, at no extra denoiser call.
    """
    weights = held_out + 1e-3
    if decay == 0:  # the default: no sums kept, no second moment on the hot path
        total = weights.sum(1)
        mean = (weights * samples).sum(1) / total
        var = (weights * (samples - mean.unsqueeze(1)) ** 2).sum(1) / total + floor
        return mean, var, None
    sums = (weights.sum(1), (weights * samples).sum(1), (weights * samples**2).sum(1))
    if memory is not None:
        sums = tuple(decay * old + new for old, new in zip(memory, sums, strict=True))
    total, first, second = sums
    mean = first / total
    var = (second / total - mean**2).clamp_min(0) + floor
    return mean, var, sums


def residual_variance(image, mean, weight):
    """The layer's own prediction error, σ² = Σ w·(x − μ)² / (3·Σ w) over the pixels it owns.

    The spread of a layer's S samples, which share most of their context, underestimates how far
    the layer's prediction is from the pixel; this is the EM estimate of a Gaussian mixture
    component's variance, added to the sample variance so both layers' likelihoods are calibrated
    alike.
    """
    error = ((image - mean) ** 2 * weight).sum((1, 2, 3), keepdim=True)
    return error / (3 * weight.sum((1, 2, 3), keepdim=True)).clamp_min(1e-6)


def log_prior(masks: torch.Tensor, prior: str, min_share: float) -> torch.Tensor:
    """The log prior (unnormalised) of each layer for shares (R, L, H, W).

    ``prior`` is ``"mask"`` (the shares themselves, per pixel), ``"mixture"`` (each layer's share
    of the image, kept in [min_share, 1 − min_share]) or ``"uniform"`` (0). For two layers the
    difference of the two is the foreground's prior log-odds.
    """
    if prior == "mask":
        return masks.clamp(1e-4, 1 - 1e-4).log()
    if prior == "mixture":
        share = masks.mean((2, 3), keepdim=True)
        return share.clamp(min_share, 1 - min_share).log()
    return torch.zeros_like(masks[:, :, :1, :1])


def log_likelihood(image, mean, var):
    return (-0.5 * (image - mean) ** 2 / var - 0.5 * var.log()).sum(1, keepdim=True)


def orderings(count: int, orient: bool) -> torch.Tensor:
    """The assignments of prompts to a partition's components to try (P, L): every permutation
    with ``orient`` (the identity first), else the identity alone."""
    if not orient:
        return torch.arange(count).unsqueeze(0)
    return torch.tensor(list(itertools.permutations(range(count))))


def border_shares(masks: torch.Tensor) -> torch.Tensor:
    """Each component's share (R, L) of the image's one-pixel frame, for shares (R, L, H, W)."""
    frame = torch.ones_like(masks[:1, :1])
    frame[..., 1:-1, 1:-1] = 0
    return (masks * frame).sum((2, 3)) / frame.sum()


def select_run(
    errors: torch.Tensor,
    cells: torch.Tensor,
    orient: bool,
    border: torch.Tensor | None = None,
    weight: float = 0.0,
) -> tuple[int, list[int]]:
    """The run (of R partitions ``cells``, (R, L, h, w)) that agrees best with the prompts, and
    which prompt each of its components gets.

    ``errors`` (L, 1, h, w) is each prompt's per-cell denoising error of the image. Giving
    component c to prompt π(c) scores −Σ_c Σ_cells m_c·err_π(c): the partition is explained best
    when each component holds the cells its prompt denoises best. With ``orient`` every
    assignment is tried (for two layers: swap or not), else only the identity; returns the run
    and the assignment ``order`` (``order[c]`` = prompt of component c) with the highest score;
    ``border`` and ``weight``: the background prior of :func:`select_fit`.
    """
    return select_fit(cell_fit(errors, cells), orient, border, weight)


def cell_fit(errors: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """``fit[r, c, l] = −Σ m_{r,c} · err_l`` (R, L, L): how well prompt l explains component c of
    run r, from each prompt's per-cell errors (L, 1, h, w) and the partitions (R, L, h, w)."""
    return -torch.einsum("rchw,lhw->rcl", cells, errors[:, 0])


def select_fit(
    fit: torch.Tensor, orient: bool, border: torch.Tensor | None = None, weight: float = 0.0
) -> tuple[int, list[int]]:
    """The run and assignment with the highest total fit, ``fit[r, c, l]`` being how well prompt l
    explains component c of run r (R, L, L); see :func:`select_run`.

    With ``border`` (R, L), each component's share of the image's frame
    (:func:`border_shares`), and ``weight`` > 0, the background prior joins the prompts: the fit
    is scaled so that an assignment's total is −1 on average over runs and assignments, and the
    component given to the last prompt (the background) adds ``weight`` × its border share. A
    background usually surrounds what is in front of it; where the prompts' errors barely tell
    the layers apart (a texture that either prompt denoises alike), the frame decides.
    """
    scores, perms = assignment_scores(fit, orient, border, weight)
    best = int(scores.flatten().argmax())
    run, choice = divmod(best, perms.shape[0])
    return run, perms[choice].tolist()


def assignment_scores(
    fit: torch.Tensor, orient: bool, border: torch.Tensor | None = None, weight: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The total fit (R, P) of every run and assignment tried, and the assignments (P, L), for
    :func:`select_fit` (which keeps the highest) and :func:`orientation_margin`."""
    if border is not None and weight > 0:
        # Σ over all (c, l) is L × an assignment's total (each entry is in (L − 1)! of L!)
        scale = fit.sum().abs().clamp_min(1e-12) / (fit.shape[0] * fit.shape[1])
        prior = torch.zeros_like(fit)
        prior[:, :, -1] = weight * border
        fit = fit / scale + prior
    perms = orderings(fit.shape[1], orient).to(fit.device)  # (P, L)
    index = perms.unsqueeze(0).expand(fit.shape[0], -1, -1)  # (R, P, L)
    scores = torch.gather(
        fit.unsqueeze(1).expand(-1, perms.shape[0], -1, -1), 3, index.unsqueeze(-1)
    )
    return scores.squeeze(-1).sum(-1), perms  # (R, P)


def orientation_margin(scores: torch.Tensor, run: int) -> torch.Tensor:
    """How clearly the best assignment of ``run`` beats its next best, ``(s₁ − s₂) / (|s₁| +
    |s₂|)`` of its scores (R, P) from :func:`assignment_scores`: 0 when a swap fits as well, 1
    with one assignment tried (a tensor; no host read)."""
    row = scores[run]
    if row.numel() < 2:
        return torch.ones((), device=row.device)
    top = row.topk(2).values
    return (top[0] - top[1]) / (top[0].abs() + top[1].abs()).clamp_min(1e-12)


def run_agreement(masks: torch.Tensor, run: int) -> torch.Tensor | None:
    """How much the other runs agree with ``run``'s partition, shares (R, L, H, W): 1 minus the
    mean total-variation distance, ``½ Σ_c |m_c − m'_π(c)|`` averaged over the pixels, each other
    run matched by the assignment of its components that fits best (every one for up to 4
    layers, else as they are); ``None`` with one run."""
    count = masks.shape[1]
    if masks.shape[0] < 2:
        return None
    perms = orderings(count, count <= 4).to(masks.device)  # (P, L)
    others = torch.cat([masks[:run], masks[run + 1 :]])  # (R − 1, L, H, W)
    distance = 0.5 * (others[:, perms] - masks[run]).abs().sum(2).mean((-2, -1))  # (R − 1, P)
    return 1 - distance.min(1).values.mean()


def pool_evidence(scores: torch.Tensor, sigma: float) -> torch.Tensor:
    """Pool each layer's log-evidence (R, L, H, W) with its neighbours' (Gaussian, σ pixels).

    Each pixel's scores are taken relative to its best layer's and floored at −:data:`EVIDENCE_CAP`
    first, so one pixel's overwhelming evidence cannot decide its neighbours while front layers
    stay distinguishable from each other (for two layers this clips the log-likelihood ratio to
    ±the cap); σ = 0 returns the relative scores unclipped.
    """
    relative = scores - scores.amax(1, keepdim=True)
    if sigma <= 0:
        return relative
    relative = relative.clamp_min(-EVIDENCE_CAP)
    size = 2 * int(3 * sigma) + 1
    return kornia.filters.gaussian_blur2d(
        relative, (size, size), (float(sigma), float(sigma)), border_type="replicate"
    )


def connected_share(masks: torch.Tensor) -> float:
    """How much of each front layer's mask (L − 1, 1, H, W; shares above ½) lies in its largest
    4-connected piece, the smallest over the front layers (0 for an empty mask): an object is
    mostly one piece, where a texture partition or an outline with its inside lost falls apart
    (scipy's ``ndimage.label``; one host read)."""
    from scipy import ndimage

    shares = []
    for mask in (masks[:, 0] > 0.5).cpu().numpy():
        labels, count = ndimage.label(mask)
        sizes = np.bincount(labels.ravel())[1:]
        shares.append(float(sizes.max() / sizes.sum()) if count else 0.0)
    return min(shares)


def fill_enclosed(shares: torch.Tensor) -> torch.Tensor:
    """Shares (R, L, H, W) in which each front layer of each run takes the background's regions
    that it encloses (front layers in order; scipy's ``binary_fill_holes`` on the pixels each
    layer holds the largest share of, one host read of that map).

    The EM has a fixed point where the background holds an object's inside: a layer predicts the
    pixels it keeps from their neighbours, so the background, once it keeps an object's inside,
    paints it from itself, and the foreground keeps only the outline. A layer that holds half of
    the image's frame or more is a frame itself (a window, or the background prompt's region when
    the prompts were given the other way round) and keeps its holes; a background seen through a
    hole in an object (a ring) is given to the object: the price of the rule.
    """
    from scipy import ndimage

    runs, count = shares.shape[:2]
    owner = shares.argmax(1).to(torch.uint8).cpu().numpy()  # (R, H, W)
    frame = np.ones(owner.shape[1:], dtype=bool)
    frame[1:-1, 1:-1] = False
    moved = np.zeros((runs, count - 1, *owner.shape[1:]), dtype=bool)
    for run in range(runs):
        free = owner[run] == count - 1
        for layer in range(count - 1):
            if (owner[run][frame] == layer).mean() >= 0.5:
                continue
            moved[run, layer] = ndimage.binary_fill_holes(owner[run] == layer) & free
            free &= ~moved[run, layer]
    if not moved.any():
        return shares
    moved = torch.from_numpy(moved).to(shares.device)  # (R, L − 1, H, W)
    front = shares[:, :-1] + moved * shares[:, -1:]
    return torch.cat([front, shares[:, -1:] * ~moved.any(1, keepdim=True)], 1)


def recheck_pieces(shares: torch.Tensor, errors: Callable[[], torch.Tensor]) -> torch.Tensor:
    """Shares (L, H, W) in which every piece of a front layer but its largest goes to the layer
    whose prompt denoises it best: the orientation check per piece, on the prompts' per-pixel
    denoising errors ``errors()`` (L, H, W), asked for only when a front layer is in pieces (the
    engine's orientation check has computed them already unless it inpaints).

    A partition by colour hands a front layer the specks of a pattern beside its object (the dots
    of a dotted background); the background's prompt denoises them better than the object's, and
    they go back. A piece of the object itself, cut off by a thin gap, stays: its own prompt fits
    it best. Pieces are 4-connected regions of the pixels where a layer holds the largest share
    (scipy's ``ndimage.label``; one host read of that map and of ``errors``); the layer a piece
    goes to takes its pixels' whole share.
    """
    from scipy import ndimage

    count = shares.shape[0]
    owner = shares.argmax(0).cpu().numpy()
    fit = None
    target = np.full(owner.shape, -1)
    for layer in range(count - 1):
        labels, pieces = ndimage.label(owner == layer)
        if pieces < 2:
            continue
        if fit is None:
            fit = errors().double().cpu().numpy()
        sizes = np.bincount(labels.ravel())[1:]
        index = np.arange(1, pieces + 1)
        means = np.stack([ndimage.mean(each, labels, index) for each in fit])  # (L, P)
        best = np.concatenate([[-1], means.argmin(0)])  # by label; 0 is not the layer's
        best[1 + sizes.argmax()] = layer  # the largest piece stays
        best[best == layer] = -1
        target = np.where(best[labels] >= 0, best[labels], target)
    if (target < 0).all():
        return shares
    target = torch.from_numpy(target).to(shares.device)
    layers = torch.arange(count, device=shares.device).view(-1, 1, 1)
    moving = target >= 0
    kept = shares * ~moving
    return kept + (layers == target) * shares.sum(0, keepdim=True) * moving


def confidence(
    agreement: torch.Tensor | None, margin: torch.Tensor | None, masks: torch.Tensor
) -> dict:
    """How sure a run is (``Layers.trace["confidence"]``): how much its runs agree
    (:func:`run_agreement`), how clearly the prompts chose the orientation
    (:func:`orientation_margin`), how much of each front layer is one piece
    (:func:`connected_share`, of the final masks ``masks`` (L − 1, 1, H, W)), and the score that
    flags a doubtful run, ``margin × connected`` (:func:`doubt`); numbers (one host read, at the
    end of a run)."""

    def number(value):
        return None if value is None else round(float(value), 4)

    connected = connected_share(masks)
    score = None if margin is None else float(margin) * connected
    return {
        "agreement": number(agreement),
        "margin": number(margin),
        "connected": number(connected),
        "score": number(score),
    }


UNSURE_SCORE = 0.25
"""A confidence score (orientation margin × connected share) below which a decomposition is
flagged as unsure (``benchmarks/decompose_quality.py`` reports how well each figure flags the
failures)."""


def doubt(confidence: dict) -> str | None:
    """What to tell a user of a decomposition whose ``confidence`` (:func:`confidence`) is low,
    or ``None``: the prompts barely chose which part is which layer, or a layer falls apart."""
    score = confidence.get("score")
    if score is None or score >= UNSURE_SCORE:
        return None
    return (
        f"the layers may be wrong (confidence {score:.2f}, below {UNSURE_SCORE}: the prompts "
        f"tell the layers apart by a margin of {confidence['margin']:.2f}, and "
        f"{confidence['connected']:.0%} of the foreground is one piece); rerun with another "
        "seed or reword the prompts"
    )
