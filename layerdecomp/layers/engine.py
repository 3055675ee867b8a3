"""The layer-inference engine: L layers and their soft masks from L prompts (§4.2).

Given an image x and prompts for L ≥ 2 layers (front to back, the background last), find layers
x_l and shares m_l with ``x = Σ_l m_l·x_l`` and ``Σ_l m_l = 1`` (two layers: a foreground, a
background and the mask m = m_1). Each iteration, for each layer l, S binary masks keep the
pixels that m_l assigns to l (Bernoulli(m_l)), and every cell is held out of at least one of a
layer's S samples (S is ``samples``, the count §4.2 calls K; K stays the solver's Newton
iterations, ``iters``); the image is inpainted from each kept set under that layer's prompt with
inexact-Newton iterations at a single noise level (the x̂0 of a perturbed x_t, not a full
sampling run). R runs start from different random shares, and all L·R·S samples go through the
denoiser as one batch.
Each layer becomes a per-pixel Gaussian, fitted to the samples in which that pixel was *held
out* (so a layer is scored on how well its other pixels predict it), its variance calibrated by
the layer's own prediction error; the shares move toward the posterior responsibilities (EM for
an L-component mixture, each layer's share of the image as its prior, the evidence pooled over a
pixel's neighbours). A last check gives each component of a partition
the prompt that denoises it best (for two layers: swap or not) and keeps the run whose partition
agrees best with the prompts; then each front layer takes the background's regions it encloses,
and each of its pieces but the largest goes to the layer whose prompt denoises it best.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from solvers import FiniteGuard, add_noise, refine

from ..codecs import Backend
from ..constraints import Mask
from ..options import as_dict, configure
from .config import DecomposeConfig
from .recompose import exact_layers
from .result import Layers
from .shares import initial_from, initial_shares, normalised, responsibilities
from .stats import (
    anchor_to_kept,
    assignment_scores,
    border_shares,
    cell_fit,
    confidence,
    fill_enclosed,
    keep_masks,
    layer_stats,
    log_likelihood,
    log_prior,
    orientation_margin,
    pool_evidence,
    recheck_pieces,
    residual_variance,
    run_agreement,
)

MAX_LAYERS = 8
"""The most layers one run infers (the orientation check tries every assignment of prompts)."""


def _cells(mask: torch.Tensor, factor: int) -> torch.Tensor:
    return mask if factor == 1 else F.avg_pool2d(mask, factor)


def _pixels(cells: torch.Tensor, factor: int) -> torch.Tensor:
    return cells if factor == 1 else F.interpolate(cells, scale_factor=factor, mode="nearest")


class _Sampler:
    """Draws inpainted x̂0 samples for every layer in one batch."""

    def __init__(self, backend, image, prompts, config: DecomposeConfig, generator):
        self.backend, self.config, self.generator = backend, config, generator
        self.image = image
        self.factor = backend.factor
        self.count = len(prompts)
        self.denoiser = backend.denoiser(list(prompts), config.negative_prompt, config.guidance)
        scheduler = self.denoiser.scheduler
        self.scheduler = scheduler
        self.t = int(round(config.noise_level * (scheduler.config.num_train_timesteps - 1)))
        with torch.no_grad():
            self.y = backend.encode(image).float()
        self.nfe = 0
        self.errors: torch.Tensor | None = None  # prompt_errors, once computed
        self.guard = FiniteGuard()  # read once, at the end of the run

    @torch.no_grad()
    def prompt_errors(self, levels: int) -> torch.Tensor:
        """Per-cell denoising error of the image under each prompt (L, 1, h, w).

        The image latent is noised to ``levels`` noise levels spread over (0.2, 0.9) with the same
        noise for every prompt; each prompt's x̂0 is decoded and compared with the image, pixel by
        pixel, and the squared errors are averaged over each cell: the prompt that describes a
        region denoises it better (a diffusion classifier, per cell). The comparison is in pixels
        because a latent space's distances are the VAE's own: a few latent cells can carry most of
        an image's norm (global colour, in SD-style VAEs), and in the latent those cells decide
        the map. Each level's errors are divided by their mean over the prompts and cells, so that
        every level counts alike whatever the size of a model's errors there: the errors grow by
        orders of magnitude from the lowest level to the highest, by how much depends on the
        model, and without the division the highest levels alone decide.
        """
        steps = self.scheduler.config.num_train_timesteps
        times = torch.linspace(0.2, 0.9, levels) * (steps - 1)
        errors = torch.zeros(self.count, 1, *self.y.shape[-2:], device=self.y.device)
        for t in times.round().long().tolist():
            noise = torch.randn(self.y.shape, generator=self.generator, device=self.y.device)
            x_t = add_noise(self.y, noise, t, self.scheduler).expand(self.count, -1, -1, -1)
            pixels = self.backend.decode(self.denoiser(x_t, t)).float().clamp(-1, 1)
            error = _cells((pixels - self.image).pow(2).sum(1, keepdim=True), self.factor)
            errors += error / (levels * error.mean().clamp_min(1e-12))
        self.nfe += levels
        return errors

    def prompt_map(self) -> torch.Tensor:
        """:meth:`prompt_errors` at ``orient_levels``, computed once and kept."""
        if self.errors is None:
            self.errors = self.prompt_errors(self.config.orient_levels)
        return self.errors

    def held_out_fit(self, image: torch.Tensor, cells: torch.Tensor, draws: int) -> torch.Tensor:
        """How well each prompt inpaints each component of each run's partition (R, L, L).

        Component c (the cells where it holds the largest share of ``cells``, (R, L, h, w)) is
        held out and inpainted from the other components' cells under each prompt l, ``draws``
        times (one batched call of L·draws·R·L samples); ``fit[r, c, l]`` is minus the squared
        error of their mean over c's pixels. The partition's context fixes where the object is,
        so a prompt is judged on what it puts there, not on where it would put it.
        """
        runs, count = cells.shape[:2]
        owner = cells.argmax(1, keepdim=True)
        parts = (owner == torch.arange(count, device=cells.device).view(1, -1, 1, 1)).to(
            cells.dtype
        )  # (R, C, h, w)
        keep = (1 - parts).reshape(runs * count, 1, *cells.shape[-2:])
        samples = self.draw(keep.repeat(count * draws, 1, 1, 1))
        samples = samples.unflatten(0, (count, draws, runs, count)).mean(1)  # (L, R, C, 3, H, W)
        error = (samples - image).pow(2).sum(3)  # (L, R, C, H, W)
        held = _pixels(parts, self.factor)  # (R, C, H, W)
        return -(error * held).sum((3, 4)).permute(1, 2, 0)  # (R, C, L)

    def draw(self, keep: torch.Tensor) -> torch.Tensor:
        """Inpaint ``y`` from the cells each row of ``keep`` (L·n, 1, h, w) holds; decode to pixels
        (anchored to its kept cells with ``config.anchor``: :func:`~.stats.anchor_to_kept`).

        Rows l·n … l·n + n − 1 use prompt l (one batched call).
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
            self.config.refine,
            guard=self.guard,
        )
        self.nfe += out.nfe
        with torch.no_grad():
            samples = self.backend.decode(out.x0).float().clamp(-1, 1)
        if self.config.anchor:
            samples = anchor_to_kept(samples, self.image, keep, self.factor)
        return samples


def check_prompts(fg: Sequence[str], bg: str) -> list[str]:
    """The layer prompts, front to back (the foregrounds, then the background), checked: the one
    check of every front end (the command line, the server, the Python API).

    Raises:
        InputError: no foreground, more than ``MAX_LAYERS - 1`` foregrounds, or an empty prompt
            (the message names the field: ``fg`` or ``bg``).
    """
    from ..errors import InputError

    fg = [fg] if isinstance(fg, str) else list(fg)
    if not fg:
        raise InputError("fg: give the foreground layer's prompt")
    if len(fg) > MAX_LAYERS - 1:
        raise InputError(
            f"fg: {len(fg)} foreground layers given; at most {MAX_LAYERS - 1} (with the background)"
        )
    for name, prompt in [*(("fg", p) for p in fg), ("bg", bg)]:
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{name}: the prompt is empty; describe the layer")
    return [*fg, bg]


def layer_prompts(prompts: Sequence[str | Sequence[str]]) -> list[str]:
    """The prompts of ``decompose(…, "fg", "bg")`` or ``decompose(…, ["a", "b", "bg"])``, checked
    by :func:`check_prompts` (the last is the background).

    Raises:
        InputError: fewer than two layers, more than :data:`MAX_LAYERS`, or an empty prompt.
    """
    flat: list[str] = []
    for prompt in prompts:
        flat.extend([prompt] if isinstance(prompt, str) else list(prompt))
    if not 2 <= len(flat) <= MAX_LAYERS:
        from ..errors import InputError

        raise InputError(
            f"prompts: expected 2 to {MAX_LAYERS} layers (front to back, the background last), "
            f"got {len(flat)}"
        )
    return check_prompts(flat[:-1], flat[-1])


def decompose(
    backend: Backend,
    image: torch.Tensor,
    *prompts: str | Sequence[str],
    config: DecomposeConfig | None = None,
    generator: torch.Generator | None = None,
    callback: Callable[[dict], None] | None = None,
    disable: bool | None = None,
    init_mask: torch.Tensor | None = None,
    **overrides,
) -> Layers:
    """Decompose ``image`` into L layers and their shares (§4.2).

    Args:
        backend: a loaded model (:func:`layerdecomp.models.load_model`).
        image: (1, 3, H, W) in [−1, 1]; sides a multiple of ``backend.size_multiple``.
        prompts: the layers' prompts, front to back, the background last: two or more strings,
            or one list (``decompose(b, x, "a cat", "a lawn")``, ``decompose(b, x, [p1, p2, p3])``).
        config: the parameters (defaults: :class:`DecomposeConfig`); keyword ``overrides``
            replace single fields.
        generator: seeds the mask initialisation, the Bernoulli masks and the noise.
        callback: called after every iteration with a dict (iteration, updates: the most there
            can be, last: whether the updates stop after this one, mask: the R runs' shares
            (R, L, H, W), change, nfe, stats: each layer's per-pixel mean and calibrated variance
            (R, 3, H, W), evidence: the pooled log-evidence (R, L, H, W) behind the update); R
            falls to 1 after ``select_after`` updates.
        disable: disable the progress bar.
        init_mask: shares to start from instead of random ones (every run starts from them; they
            differ by their samples only): (1, L, H, W), or for two layers the foreground's
            (1, 1, H, W); values in [0, 1].
    """
    config = configure(DecomposeConfig, config, overrides)
    prompts = layer_prompts(prompts)
    count = len(prompts)
    if image.dim() != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image: expected a (1, 3, H, W) tensor, got {tuple(image.shape)}")
    multiple = backend.size_multiple
    if any(s % multiple for s in image.shape[-2:]):
        raise ValueError(f"image: sides {tuple(image.shape[-2:])} must be multiples of {multiple}")

    start = time.perf_counter()
    image = image.float().to(backend.device)
    sampler = _Sampler(backend, image, prompts, config, generator)
    k, runs, factor = config.samples, config.runs, sampler.factor
    size = tuple(image.shape[-2:])
    if init_mask is None:
        masks = initial_shares(runs, count, size, generator, image.device)
    else:
        masks = initial_from(init_mask, count, size).to(image.device).expand(runs, -1, -1, -1)
    em = config.em
    min_share = min(em.min_share, 1.0 / count)
    history: list[float] = []
    first = None  # the run kept after config.select_after updates
    memory: list = [None] * count  # each layer's decaying sums of held-out samples (em.memory)
    from tqdm.auto import trange

    for iteration in trange(em.updates, desc="layers", disable=disable, leave=False):
        keep = keep_masks(_cells(masks, factor), k, generator)
        batch = (count, len(masks), k)  # the runs still going
        samples = sampler.draw(keep).unflatten(0, batch)
        held_out = (1 - _pixels(keep, factor)).unflatten(0, batch)
        fits = [
            layer_stats(samples[i], held_out[i], em.variance_floor, memory[i], em.memory)
            for i in range(count)
        ]
        stats, memory = [fit[:2] for fit in fits], [fit[2] for fit in fits]
        if em.calibrate:
            stats = [
                (mean, var + residual_variance(image, mean, masks[:, i : i + 1]))
                for i, (mean, var) in enumerate(stats)
            ]
        scores = torch.cat([log_likelihood(image, *layer) for layer in stats], 1)
        scores = scores + log_prior(masks, em.prior, min_share)
        # pool the evidence of neighbouring pixels; edges stay sharp
        pooled = pool_evidence(scores, em.smoothing)
        new_masks = (1 - em.damping) * masks + em.damping * responsibilities(pooled)
        new_masks = normalised(new_masks.clamp(0, 1))
        # The one host read of an update (≤ em.updates per image): the samples' NaN/Inf checks,
        # queued on the device (sampler.guard), and the mask change that says whether to stop.
        (change,) = sampler.guard.raise_if_bad(
            (new_masks - masks)[:, :-1].abs().sum(1).mean((1, 2)).max()
        )
        masks = new_masks
        history.append(change)
        last = change < em.tol or iteration + 1 >= em.updates
        if callback is not None:
            callback(
                {
                    "iteration": iteration,
                    "updates": em.updates,
                    "last": last,
                    "mask": masks,
                    "change": change,
                    "nfe": sampler.nfe,
                    "stats": stats,
                    "evidence": pooled,
                }
            )
        if last:
            break
        if iteration + 1 == config.select_after and masks.shape[0] > 1:
            # only the run that fits the prompts best goes on (its orientation is checked again
            # at the end, on its final partition)
            kept, _, _ = _choose(sampler, image, masks, config)
            masks, first = masks[kept : kept + 1], kept
            if em.memory:
                memory = [tuple(part[kept : kept + 1] for part in sums) for sums in memory]

    sampler.guard.raise_if_bad()
    order, chosen, margin = list(range(count)), 0, None
    if config.orient or masks.shape[0] > 1:
        chosen, order, margin = _choose(sampler, image, masks, config)
    agreement = run_agreement(masks, chosen)
    masks = masks[chosen]
    chosen = first if first is not None else chosen
    if order != list(range(count)):
        masks = masks[torch.tensor(order).argsort()]  # component c holds prompt order[c]'s layer
    if config.fill_holes:  # the background's regions each front layer encloses go to it
        masks = fill_enclosed(masks[None])[0]
    if config.recheck_pieces:  # each stray piece of a front layer goes to the prompt it fits
        masks = recheck_pieces(masks, lambda: _pixels(sampler.prompt_map(), factor)[:, 0])
    masks = masks.unsqueeze(1)  # (L, 1, H, W)

    # Final layers: each inpainted from the cells where it holds the largest share, averaged.
    n = config.final_samples
    owner = _cells(masks, factor).argmax(0, keepdim=True)  # (1, 1, h, w)
    keep = torch.cat([(owner == i).float().expand(n, -1, -1, -1) for i in range(count)])
    samples = sampler.draw(keep).unflatten(0, (count, n)).mean(1)
    sampler.guard.raise_if_bad()
    return Layers(
        images=exact_layers(image, masks, samples),
        masks=masks,
        prompts=prompts,
        history=history,
        order=order,
        run=chosen,
        nfe=sampler.nfe,
        seconds=time.perf_counter() - start,
        config=as_dict(config),
        trace={
            "timestep": sampler.t,
            "layers": count,
            "confidence": confidence(agreement, margin, masks[:-1]),
        },
    )


def _choose(sampler: _Sampler, image, masks, config: DecomposeConfig):
    """The run of ``masks`` (R, L, H, W) whose partition agrees best with the prompts (and with a
    background that holds the image's border), which prompt each of its components gets (the
    prompt that denoises it best: EM alone can settle on a permuted partition), and how clearly
    (:func:`~.stats.orientation_margin`). The denoising errors are the image's alone: computed
    once, kept on the sampler."""
    border = border_shares(masks)
    cells = _cells(masks, sampler.factor)
    if config.orient_by == "inpainting":
        fit = sampler.held_out_fit(image, cells, config.orient_draws)
    else:
        fit = cell_fit(sampler.prompt_map(), cells)
    scores, perms = assignment_scores(fit, config.orient, border, config.orient_border)
    run, choice = divmod(int(scores.flatten().argmax()), perms.shape[0])
    return run, perms[choice].tolist(), orientation_margin(scores, run)


__all__ = ["MAX_LAYERS", "check_prompts", "decompose", "layer_prompts"]
