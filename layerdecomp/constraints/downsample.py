"""The ``downsample`` constraint: super-resolution, ``y = Down_s(D(x̂0)) + noise`` (§4.1).

``Down_s`` is kornia's antialiased bicubic resize by an integer factor ``s``; it is linear, and
:func:`downsample_adjoint` is its exact adjoint ``Downᵀ``. Two ways to turn the pixel residual
``r = y − Down_s(D(x̂0))`` into an error direction in model space:

* ``"backprop"`` (the paper): ``e = −∇_{x̂0} ½‖r‖² = J_Dᵀ·Downᵀ·r``, a backward pass through the
  decoder only (never through the denoiser);
* ``"vae_newton"`` (the authors' code page): no backward pass at all. ``e_pix = Downᵀ·r`` is taken
  to model space by a finite difference through the *encoder*,
  ``e ≈ (E(D(x̂0) + δ·e_pix) − E(D(x̂0))) / δ`` with ``δ = delta / max|e_pix|`` per sample (both
  encodes in one batched call), i.e. ``J_E·e_pix`` — the latent change that produces the pixel
  change ``e_pix`` when ``E ≈ D⁻¹``. It costs one decode and one encode of a doubled batch and keeps
  no graph. For a pixel-space model (identity codec) both methods give exactly ``Downᵀ·r``.

The paper's perturbation (noise around x̂0 before the error is computed) is the ``perturbation``
option of :func:`solvers.sample`; it works with either method.
"""

from __future__ import annotations

from typing import Literal

import torch
from kornia.geometry.transform import resize

from ..codecs import Codec, IdentityCodec
from .base import Constraint
from .registry import register

Method = Literal["backprop", "vae_newton"]
METHODS: tuple[str, ...] = ("backprop", "vae_newton")


def _check_scale(scale: int) -> int:
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale: expected a positive integer, got {scale!r}")
    return scale


def downsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    """``Down_s``: antialiased bicubic downsampling of (B, C, H, W) by an integer ``scale``."""
    scale = _check_scale(scale)
    height, width = image.shape[-2:]
    if height % scale or width % scale:
        raise ValueError(f"image: size {height}x{width} is not a multiple of the scale {scale}")
    if scale == 1:
        return image
    return resize(image, (height // scale, width // scale), interpolation="bicubic", antialias=True)


def downsample_adjoint(residual: torch.Tensor, scale: int) -> torch.Tensor:
    """``Downᵀ``: the exact adjoint of :func:`downsample` (a vector-Jacobian product of the resize).

    ``Down_s`` is linear, so its adjoint applied to ``residual`` (B, C, h, w) is the gradient of
    ``⟨Down_s(x), residual⟩`` with respect to x (B, C, h·s, w·s); no network is involved.
    """
    scale = _check_scale(scale)
    if scale == 1:
        return residual
    shape = (*residual.shape[:-2], residual.shape[-2] * scale, residual.shape[-1] * scale)
    with torch.enable_grad():
        probe = torch.zeros(shape, dtype=residual.dtype, device=residual.device)
        probe.requires_grad_(True)
        (adjoint,) = torch.autograd.grad(
            downsample(probe, scale), probe, grad_outputs=residual.detach()
        )
    return adjoint


def measure(
    image: torch.Tensor,
    scale: int,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A simulated measurement ``y = Down_s(image) + noise·n``, n ~ N(0, I) (σ_y = 0.05 in §4.1)."""
    if noise < 0:
        raise ValueError(f"noise: expected ≥ 0, got {noise}")
    with torch.no_grad():
        y = downsample(image, scale)
        if noise > 0:
            n = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
            y = y + noise * n
    return y


@register("downsample")
class Downsample(Constraint):
    """Super-resolution: match a low-resolution image, y = Down_s(D(x̂0)) (antialiased bicubic).

    Args:
        y: (B or 1, C, h, w) the low-resolution measurement, pixels in [−1, 1].
        scale: the integer factor s; x̂0 must decode to (h·s, w·s).
        codec: the model's codec (identity for pixel models).
        method: ``"backprop"`` (decoder backprop, the paper) or ``"vae_newton"`` (a finite
            difference through the encoder, no backward pass).
        delta: ``vae_newton`` only: the largest pixel change of the finite-difference probe
            (δ = delta / max|e_pix| per sample; pixels span [−1, 1]).
    """

    def __init__(
        self,
        y: torch.Tensor,
        scale: int = 4,
        *,
        codec: Codec | None = None,
        method: Method = "backprop",
        delta: float = 0.02,
    ):
        if not isinstance(y, torch.Tensor) or y.dim() != 4:
            raise ValueError("y: expected a (B, C, h, w) tensor")
        if method not in METHODS:
            raise ValueError(f"method: {method!r} is not one of {', '.join(METHODS)}")
        if not delta > 0:
            raise ValueError(f"delta: expected > 0, got {delta}")
        self.y, self.scale = y, _check_scale(scale)
        self.codec = codec or IdentityCodec()
        self.method, self.delta = method, float(delta)

    @classmethod
    def from_image(
        cls,
        image: torch.Tensor,
        *,
        codec: Codec | None = None,
        scale: int = 4,
        noise: float = 0.0,
        seed: int | None = None,
        **kwargs,
    ) -> Downsample:
        """Treat ``image`` as the high-resolution truth: ``y = Down_s(image) + noise·n``."""
        generator = None if seed is None else torch.Generator().manual_seed(int(seed))
        y = measure(image.cpu(), scale, noise, generator).to(image.device)
        return cls(y, scale, codec=codec, **kwargs)

    def _residual(self, image: torch.Tensor) -> torch.Tensor:
        expected = (self.y.shape[-2] * self.scale, self.y.shape[-1] * self.scale)
        if tuple(image.shape[-2:]) != expected:
            raise ValueError(
                f"x0: decodes to size {tuple(image.shape[-2:])}, not the measurement's "
                f"{tuple(self.y.shape[-2:])} × {self.scale} = {expected}"
            )
        y = self.y.to(device=image.device, dtype=image.dtype)
        return y - downsample(image, self.scale)

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.method == "backprop":
            with torch.enable_grad():
                z = x0.detach().requires_grad_(True)
                residual = self._residual(self.codec.decode(z))
                loss = 0.5 * residual.float().pow(2).sum()
                (grad,) = torch.autograd.grad(loss, z)
            e = -grad.detach()
        else:
            e, residual = self._vae_newton(x0)
        rms = residual.detach().float().pow(2).flatten(1).mean(1).sqrt()
        return e.to(x0.dtype), rms.to(x0.device)

    def _vae_newton(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``e ≈ (E(D(x̂0) + δ·Downᵀr) − E(D(x̂0))) / δ``: no backward pass through any network."""
        with torch.no_grad():
            image = self.codec.decode(x0)
            residual = self._residual(image)
            e_pix = downsample_adjoint(residual.float(), self.scale)
            amax = e_pix.abs().flatten(1).amax(1).view(-1, *([1] * (e_pix.dim() - 1)))
            delta = torch.where(amax > 0, self.delta / amax.clamp_min(1e-30), 0.0)
            probe = image.float() + delta * e_pix
            both = self.codec.encode(torch.cat([image.float(), probe]).to(image.dtype)).float()
            base, shifted = both.chunk(2)
            e = torch.where(delta > 0, (shifted - base) / delta.clamp_min(1e-30), 0.0)
        return e.to(device=x0.device), residual


__all__ = ["METHODS", "Downsample", "Method", "downsample", "downsample_adjoint", "measure"]
