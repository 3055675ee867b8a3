"""What a decomposition returns: L layers, front to back, and the share of each pixel each holds.

``x = Σ_l m_l·x_l`` with ``Σ_l m_l = 1``: the masks are *visible shares* (per-pixel categorical
responsibilities). Editors stack layers with *alphas* instead: the front layer's alpha is its
share, each layer behind it covers what the layers in front left, ``a_l = m_l / (1 − Σ_{j<l} m_j)``,
and the background is opaque; compositing the layers "over" each other from the back gives the
same image (:meth:`Layers.recomposition` and :func:`composite_over` agree).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image


def alphas_from_shares(masks: torch.Tensor) -> torch.Tensor:
    """Stacking alphas (L, 1, H, W) of visible shares (L, 1, H, W), front first.

    Where the layers in front already cover a pixel entirely, the layer's alpha is 0 there; the
    last layer's alpha is 1.
    """
    covered = torch.cumsum(masks, 0) - masks  # Σ_{j<l} m_j
    left = (1 - covered).clamp_min(0)
    alphas = torch.where(left > 1e-6, masks / left.clamp_min(1e-6), torch.zeros_like(masks))
    alphas = alphas.clamp(0, 1)
    alphas[-1] = 1.0
    return alphas


def shares_from_alphas(alphas: torch.Tensor) -> torch.Tensor:
    """Visible shares (L, 1, H, W) of stacking alphas, front first (the inverse of
    :func:`alphas_from_shares`; the last alpha is taken as 1)."""
    alphas = alphas.clone()
    alphas[-1] = 1.0
    left = torch.cumprod(torch.cat([torch.ones_like(alphas[:1]), 1 - alphas[:-1]]), 0)
    return alphas * left


def composite_over(images: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """Layers (L, 3, H, W) with alphas (L, 1, H, W), front first, composited "over" from the
    back."""
    out = images[-1:]
    for layer in range(images.shape[0] - 2, -1, -1):
        a = alphas[layer : layer + 1]
        out = a * images[layer : layer + 1] + (1 - a) * out
    return out


@dataclass
class Layers:
    """Result of :func:`layerdecomp.layers.decompose`.

    Attributes:
        images: (L, 3, H, W) in [−1, 1], front to back; the last is the background.
        masks: (L, 1, H, W) visible shares in [0, 1] summing to 1 over the layers.
        prompts: the L prompts, front to back (``images[l]`` is ``prompts[l]``'s layer).
        history: the largest mean mask change of every update (over the runs).
        order: ``order[c]`` is the prompt the orientation check gave the partition's component
            c (the identity when it kept the order the updates found).
        run: which of the independent runs was kept.
        nfe, seconds: denoiser evaluations and wall time.
        config: the options of the run, by name (:func:`layerdecomp.options.as_dict`).
        trace: what the run found or chose on its way (``seed``, ``timestep``, ``work_size``,
            ``layers``, ``matting``: the band and seconds of the matting), apart from the
            options.

    Two layers keep the names of the two-layer API: :attr:`foreground`, :attr:`background` and
    :attr:`mask` (the foreground's share).
    """

    images: torch.Tensor
    masks: torch.Tensor
    prompts: list[str] = field(default_factory=list)
    history: list[float] = field(default_factory=list)
    order: list[int] = field(default_factory=list)
    run: int = 0
    nfe: int = 0
    seconds: float = 0.0
    config: dict[str, Any] = field(default_factory=dict)
    trace: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.images.dim() != 4 or self.images.shape[1] != 3 or self.images.shape[0] < 2:
            raise ValueError(f"images: expected (L ≥ 2, 3, H, W), got {tuple(self.images.shape)}")
        expected = (self.images.shape[0], 1, *self.images.shape[-2:])
        if tuple(self.masks.shape) != expected:
            raise ValueError(f"masks: expected {expected}, got {tuple(self.masks.shape)}")
        if self.prompts and len(self.prompts) != self.images.shape[0]:
            raise ValueError(f"prompts: {len(self.prompts)} for {self.images.shape[0]} layers")
        if not self.order:
            self.order = list(range(self.images.shape[0]))

    @classmethod
    def two(cls, foreground, background, mask, **fields) -> Layers:
        """Two layers from a foreground, a background (1, 3, H, W) and its mask (1, 1, H, W)."""
        return cls(torch.cat([foreground, background]), torch.cat([mask, 1 - mask]), **fields)

    @property
    def count(self) -> int:
        return int(self.images.shape[0])

    @property
    def foreground(self) -> torch.Tensor:
        """The front layer (1, 3, H, W)."""
        return self.images[:1]

    @property
    def background(self) -> torch.Tensor:
        """The back layer (1, 3, H, W)."""
        return self.images[-1:]

    @property
    def mask(self) -> torch.Tensor:
        """The front layer's share (1, 1, H, W)."""
        return self.masks[:1]

    @property
    def swapped(self) -> bool:
        """Whether the orientation check reassigned the prompts to the partition's components."""
        return self.order != list(range(self.count))

    @property
    def unsure(self) -> str | None:
        """Why these layers may be wrong (a low confidence of the run), or ``None``."""
        from .stats import doubt

        return doubt(self.trace.get("confidence", {}))

    @property
    def alphas(self) -> torch.Tensor:
        """Stacking alphas (L, 1, H, W) for editors; the background's is 1."""
        return alphas_from_shares(self.masks)

    @property
    def recomposition(self) -> torch.Tensor:
        """Σ_l m_l·x_l (1, 3, H, W): the input image, exactly."""
        return (self.masks * self.images).sum(0, keepdim=True)

    def to_pil(self) -> dict[str, Image.Image]:
        """The images ``layerdecomp decompose`` writes as PNGs, by file stem: ``foreground``
        (RGBA, alpha = mask), ``background``, ``mask`` and ``recomposed`` for two layers;
        ``layer1``…, ``background``, ``mask1``… and ``recomposed`` for more.

        Raises:
            InputError: NaN or Inf in the layers.
        """
        from .writers import layer_images

        return dict(layer_images(self).images)

    def save(
        self,
        folder: str | os.PathLike,
        image: Image.Image | None = None,
        *,
        metadata: dict[str, Any] | None = None,
        formats: Sequence[str] | None = None,
    ) -> Path:
        """Write the files ``layerdecomp decompose`` writes (the PNGs, ``sheet.png``,
        ``layers.ora``, ``layers.psd`` or the chosen ``formats``, and ``run.json`` last) into
        ``folder``, created if missing; returns it.

        ``image`` is the input the sheet shows (default: the recomposition, which is the input);
        ``run.json`` holds :meth:`record` and ``metadata``.

        Raises:
            InputError: NaN or Inf in the layers, or a file that cannot be written (then nothing
                is left in ``folder``).
        """
        from ..io import tensor_to_image, to_rgb
        from ..runs.record import run_record
        from .writers import save_decomposition

        shown = to_rgb(image) if image is not None else tensor_to_image(self.recomposition)
        record = run_record("Layers.save", inputs={}, output=folder, result=self.record())
        record.update(metadata or {})
        return save_decomposition(folder, shown, self, record, formats)

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records of the decomposition, whoever ran it (the command line, the
        web page): the size, the prompts, every option by name, the engine's trace. The caller
        adds where it ran (command, files, model, timings)."""
        prompts = list(self.prompts)
        return {
            "size": [int(self.images.shape[-1]), int(self.images.shape[-2])],
            "fg_prompt": prompts[0] if prompts else None,
            "bg_prompt": prompts[-1] if prompts else None,
            "prompts": prompts,
            "parameters": dict(self.config),
            **self.trace,
            "unsure": self.unsure,
            "nfe": self.nfe,
            "mask_change": [round(c, 6) for c in self.history],
            "updates_run": len(self.history),
            "swapped": self.swapped,
            "run": self.run,
        }


__all__ = ["Layers", "alphas_from_shares", "composite_over", "shares_from_alphas"]
