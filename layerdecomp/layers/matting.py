"""Edges: alpha matting after the engine (pymatting), for soft edges that carry no other colour.

The engine's shares are blurry at the boundaries. :func:`matte` refines them with closed-form
matting (Levin et al. 2008, :func:`pymatting.estimate_alpha_cf`) in a band around each boundary
and re-estimates the colours there (multi-level foreground estimation, Germer et al. 2020,
:func:`pymatting.estimate_foreground_ml`), so a soft edge's colour is the layer's own, not a mix
with what lies behind it.

Per front layer (front to back, the background last):

1. a trimap from its share: sure foreground where the share is at least ``sure`` after an
   erosion by ``b`` pixels (a square of side ``2·b + 1``; ``b`` is ``band`` working pixels of
   the engine at the image's size, :func:`image_band`), sure background where it is at most
   ``1 − sure`` after the same erosion, unknown in between (a band of about ``2·b`` pixels plus
   the engine's own blur);
2. its alpha, by closed-form matting of the input image against that trimap;
3. its colour where the alpha is above 0: the estimated foreground; where it is 0 the engine's
   layer stays (hidden there, the engine's estimate is all there is).

A layer whose trimap has no sure foreground, no sure background or no unknown pixel keeps the
engine's share and colours. (Narrowing the band for such a layer was tried: on the composites
where it mattered the engine had found the wrong region, and matting a sliver of it made the
alpha worse.)

With more than two layers each front layer is matted against everything else (the layers behind
*and* in front of it); the alphas become the front layers' shares, scaled down where they add up
to more than 1, and the background takes what they leave. The background's colour is the
engine's where the front layers cover it and the matting's background estimate where they leave
it (weighted by the share they leave), so the background still fills what the layers hid.
Finally :func:`~layerdecomp.layers.recompose.exact_layers` corrects the colours so that
``Σ_l m_l·x_l`` is the input exactly.

pymatting compiles its kernels with numba on its first import in an environment (about a minute
of CPU; cached afterwards, then about 2 s to import) and is imported only when :func:`matte`
runs.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from .recompose import exact_layers
from .result import Layers

SURE = 0.7
"""The default ``sure``: a share at least this (at most ``1 − sure``), after the erosion, is sure
foreground (background) in the trimap (0.5, 0.7 and 0.9 were tried; see ``DEFAULT_BAND``)."""

DEFAULT_BAND = 2
"""The erosion, in the engine's working pixels, that opens the unknown band of the trimap (chosen
on composites of the training split; see ``benchmarks/RESULTS.md``, "Matting (issue #14)")."""


def _erode(region: torch.Tensor, band: int) -> torch.Tensor:
    """Binary erosion of ``region`` (H, W) by a (2·band + 1)² square (outside counts as inside)."""
    outside = (~region).double()[None, None]
    return F.max_pool2d(outside, 2 * band + 1, stride=1, padding=band)[0, 0] == 0


def trimap(share: torch.Tensor, band: int, sure: float = SURE) -> torch.Tensor:
    """The trimap (H, W) of a share (H, W): 1 sure foreground, 0 sure background, 0.5 unknown."""
    fg = _erode(share >= sure, band)
    bg = _erode(share <= 1 - sure, band)
    out = torch.full_like(share, 0.5, dtype=torch.float64)
    out[fg] = 1.0
    out[bg] = 0.0
    return out


def _import_pymatting():
    """pymatting, imported without changing torch's thread count.

    Importing it (numba's OpenMP layer) resets the process's OpenMP threads to the core count,
    torch's included: a run with one torch thread would then compute every later image with two,
    in another summation order, and a folder run would differ from single-image runs of the
    same images. torch's count is put back.
    """
    threads = torch.get_num_threads()
    import pymatting

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return pymatting


def _layer_matte(rgb: np.ndarray, share: torch.Tensor, band: int, sure: float):
    """Alpha (H, W), foreground and background colours (H, W, 3) in [0, 1] of one layer, or None
    where the trimap gives closed-form matting nothing to solve or nothing to anchor on."""
    tri = trimap(share, band, sure)
    if not all(bool((tri == value).any()) for value in (0.0, 0.5, 1.0)):
        return None
    pymatting = _import_pymatting()

    # The matting Laplacian is only semi-definite: the incomplete Cholesky preconditioner starts
    # with a small diagonal shift rather than fail at 0, and where a shift still fails (it tries
    # the next) pymatting's "PERFORMANCE WARNING" goes nowhere instead of onto stdout.
    shifts = [1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]
    with contextlib.redirect_stdout(io.StringIO()):
        alpha = pymatting.estimate_alpha_cf(
            rgb, tri.numpy(), preconditioner=lambda a: pymatting.ichol(a, shifts=shifts)
        )
    fg, bg = pymatting.estimate_foreground_ml(rgb, alpha, return_background=True)
    return alpha, fg.astype(np.float64), bg.astype(np.float64)


def image_band(layers: Layers, band: int) -> int:
    """``band`` in the engine's working pixels as pixels of the layers: scaled by the longer
    side of the layers over that of ``layers.trace["work_size"]`` (the engine's mask is that
    much blurrier at the layers' size), at least 1; unscaled without a working size."""
    work = layers.trace.get("work_size")
    if not work:
        return band
    return max(1, round(band * max(layers.images.shape[-2:]) / max(work)))


def matte(
    image: torch.Tensor, layers: Layers, *, band: int = DEFAULT_BAND, sure: float = SURE
) -> Layers:
    """The engine's ``layers`` of ``image`` (1, 3, H, W) in [−1, 1], with matted edges.

    ``band`` is in the engine's working pixels (see :func:`image_band`); ``sure`` the share from
    which the trimap is sure. Returns a new :class:`Layers` (same prompts and run record;
    ``trace["matting"]`` holds both, the band in pixels of the image and the seconds it took)
    whose shares sum to 1 and whose layers reproduce ``image`` exactly. See the module's
    docstring for the method.

    Raises:
        InputError: ``band`` below 1, ``sure`` outside [0.5, 1], or an image that does not match
            the layers.
    """
    if isinstance(band, bool) or not isinstance(band, int) or band < 1:
        raise InputError(f"band: expected a whole number of pixels ≥ 1, got {band!r}")
    if not 0.5 <= sure <= 1:
        raise InputError(f"sure: expected a share in [0.5, 1], got {sure!r}")
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[1:] != layers.images.shape[1:]:
        raise InputError(
            f"image: expected (1, 3, H, W) matching the layers {tuple(layers.images.shape[1:])}, "
            f"got {tuple(image.shape)}"
        )
    start = time.perf_counter()
    pixels = image_band(layers, band)
    device, dtype = layers.images.device, layers.images.dtype
    x = image.detach().double().cpu()
    engine = layers.images.detach().double().cpu()
    shares = layers.masks.detach().double().cpu().clamp(0, 1)
    rgb = ((x[0].permute(1, 2, 0) + 1) / 2).clamp(0, 1).numpy()

    estimates = engine.clone()
    front = []
    behind_sum = torch.zeros_like(x[0])  # Σ α_l·B_l over the matted layers (3, H, W)
    behind_weight = torch.zeros_like(shares[0])  # Σ α_l (1, H, W)
    for layer in range(layers.count - 1):
        result = _layer_matte(rgb, shares[layer, 0], pixels, sure)
        if result is None:
            front.append(shares[layer])
            continue
        alpha, fg, bg = (torch.from_numpy(np.ascontiguousarray(a)) for a in result)
        alpha = alpha.double()[None]
        colour = fg.permute(2, 0, 1) * 2 - 1
        estimates[layer] = torch.where(alpha > 0, colour, engine[layer])
        behind_sum += alpha * (bg.permute(2, 0, 1) * 2 - 1)
        behind_weight += alpha
        front.append(alpha)

    front_shares = torch.stack(front)
    total = front_shares.sum(0, keepdim=True)
    front_shares = front_shares / total.clamp_min(1.0)
    covered = front_shares.sum(0).clamp(0, 1)  # (1, H, W)
    masks = torch.cat([front_shares, (1 - covered)[None]])

    behind = torch.where(behind_weight > 0, behind_sum / behind_weight.clamp_min(1e-12), x[0])
    estimates[-1] = covered * engine[-1] + (1 - covered) * behind
    images = exact_layers(x, masks, estimates.clamp(-1, 1))
    seconds = time.perf_counter() - start
    record = {"band": band, "band_pixels": pixels, "sure": sure, "seconds": round(seconds, 4)}
    return replace(
        layers,
        images=images.to(device=device, dtype=dtype),
        masks=masks.to(device=device, dtype=dtype),
        trace={**layers.trace, "matting": record},
    )


__all__ = ["DEFAULT_BAND", "SURE", "image_band", "matte", "trimap"]
