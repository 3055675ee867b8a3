"""An exact, prompt-conditioned pixel-space backend for testing the layer engine.

Each prompt names a colour; its "data" are smooth Gaussian fields around that colour, and the
denoiser is their exact posterior mean E[x0 | x_t] (linear, per channel).
"""

from __future__ import annotations

import torch

from solvers import Denoiser
from tests.oracles import ddim_scheduler, rbf_covariance

COLOURS = {
    "red": (0.9, -0.8, -0.8),
    "blue": (-0.8, -0.6, 0.9),
    "green": (-0.7, 0.8, -0.7),
    "": (0.0, 0.0, 0.0),
}


class ToyBackend:
    factor = 1
    size_multiple = 1
    latent_channels = 3
    device = torch.device("cpu")

    def __init__(self, side: int = 16, variance: float = 0.02, length: float = 4.0):
        self.side = side
        self.cov = rbf_covariance(side, length=length, variance=variance)
        self.scheduler = ddim_scheduler()
        self.unet_calls = 0
        self.batch_sizes: list[int] = []
        self._gains: dict[int, torch.Tensor] = {}

    def gain(self, t: int) -> torch.Tensor:
        """The exact Jacobian √ᾱ·Σ·(ᾱΣ + (1−ᾱ)I)⁻¹ of the posterior mean at timestep t."""
        if t not in self._gains:
            abar = float(self.scheduler.alphas_cumprod[t])
            eye = torch.eye(self.cov.shape[0], dtype=torch.float64)
            self._gains[t] = (
                abar**0.5 * self.cov @ torch.linalg.inv(abar * self.cov + (1 - abar) * eye)
            )
        return self._gains[t]

    def denoiser(self, prompt="", negative_prompt="", guidance=0.0, *, shape=None) -> Denoiser:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        means = torch.tensor([COLOURS[p] for p in prompts], dtype=torch.float64)

        def x0_hat(x_t, t):
            self.unet_calls += 1
            self.batch_sizes.append(x_t.shape[0] * (2 if guidance > 0 else 1))
            batch = x_t.shape[0]
            mean = means.repeat_interleave(batch // len(prompts), 0)[:, :, None, None]
            mean = mean.expand(-1, -1, self.side, self.side).to(torch.float64)
            abar = float(self.scheduler.alphas_cumprod[int(t)])
            gain = self.gain(int(t))
            centred = (x_t.double() - abar**0.5 * mean).reshape(batch, 3, -1)
            x0 = mean + (centred @ gain.T).reshape(batch, 3, self.side, self.side)
            return x0.to(x_t.dtype)

        return Denoiser(x0_hat, ddim_scheduler(), "sample")

    def describe(self):
        return {"spec": "toy", "kind": "toy", "factor": 1}

    def encode(self, image):
        return image.float()

    def decode(self, latent):
        return latent


def toy_decompose(image, fg="red", bg="blue", seed=0, backend=None, **overrides):
    """:func:`layerdecomp.layers.decompose` on the toy model, seeded, without a progress bar;
    ``fg`` is one prompt or a list of them (front to back)."""
    from layerdecomp.layers import decompose

    generator = torch.Generator().manual_seed(seed)
    prompts = [fg] if isinstance(fg, str) else list(fg)
    return decompose(
        backend or ToyBackend(),
        image,
        [*prompts, bg],
        generator=generator,
        disable=True,
        **overrides,
    )


def disk_image(side: int = 16, radius: float = 4.5, fg="red", bg="blue"):
    """A disk of colour ``fg`` on ``bg``: the image (1, 3, side, side) and its true mask."""
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    centre = (side - 1) / 2
    alpha = (((ys - centre) ** 2 + (xs - centre) ** 2) <= radius**2).float()[None, None]
    fg_rgb = torch.tensor(COLOURS[fg]).view(1, 3, 1, 1)
    bg_rgb = torch.tensor(COLOURS[bg]).view(1, 3, 1, 1)
    return alpha * fg_rgb + (1 - alpha) * bg_rgb, alpha


def three_layer_image(side: int = 16):
    """A red disk in front of a green bar on blue: the image (1, 3, side, side) and the true
    visible shares (3, 1, side, side), front to back."""
    disk, alpha = disk_image(side, radius=side * 0.22)
    ys, xs = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    bar = ((xs >= side // 2) & (ys >= side // 4) & (ys < 3 * side // 4)).float()[None, None]
    bar = bar * (1 - alpha)  # the disk is in front
    shares = torch.cat([alpha, bar, 1 - alpha - bar]).clamp(0, 1)
    colours = torch.tensor([COLOURS["red"], COLOURS["green"], COLOURS["blue"]]).view(3, 3, 1, 1)
    return (shares * colours).sum(0, keepdim=True), shares
