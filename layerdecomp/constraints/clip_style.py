"""The ``clip_style`` constraint: match the CLIP-feature Gram matrix of a reference image.

From the authors' code page (the paper has no style experiment); ``docs/algorithm.md``,
"clip_style (style)".

The decoded x̂0 is mapped to [0, 1], resized to CLIP's input size (224 for ViT-B/16, bicubic,
kornia) and CLIP-normalised; the tokens after residual block N (0-based, default 2) of the vision
transformer, CLS dropped, give the Gram matrix ``G = FᵀF / L`` (F: L tokens × D channels). The
error is ``e = −∇_{x̂0} ½‖G(D(x̂0)) − G(ref)‖²_F``, a backward pass through CLIP's first N+1 blocks
and the decoder only. The residual is the Frobenius distance ``‖G(D(x̂0)) − G(ref)‖_F``.

The CLIP weights come from :func:`load_clip`: an open_clip pretrained tag (``openai``) for a
built-in architecture (``ViT-B-16``), a local checkpoint file, or an open_clip folder
(``open_clip_config.json`` next to the weights). Offline and not cached → one clear error.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
from kornia.enhance import normalize
from kornia.geometry.transform import resize

from .. import hub
from ..codecs import Codec, IdentityCodec
from ..errors import ModelSpecError
from .base import Constraint
from .registry import register

DEFAULT_CLIP_MODEL = "ViT-B-16"


def _download(tag: str, name: str) -> str:
    """The local file of an open_clip pretrained tag (cached, or downloaded when online).

    When the hub cannot be asked (offline, or no network), the cache is looked up first and a
    missing file is refused at once, in one whole line: no download is tried.
    """
    from open_clip.pretrained import (
        download_pretrained,
        get_pretrained_cfg,
        list_pretrained_tags_by_model,
    )

    tags = list_pretrained_tags_by_model(name)
    if tag not in tags:
        raise ModelSpecError(
            f"--clip {tag!r}: no such file, and not a pretrained tag of {name} "
            f"(tags: {', '.join(tags) or 'none'})"
        )
    cfg = get_pretrained_cfg(name, tag)
    why = hub.unavailable()
    if why is not None:
        found = _cached(cfg)
        if found is None:
            raise ModelSpecError(
                f"--clip {tag!r}: the CLIP weights of {name} ({_source(cfg)}) are not in the "
                f"local cache, and {why}; run once online to cache them, or give a local copy "
                "with --clip PATH (a checkpoint file or an open_clip folder)"
            )
        return found
    try:
        target = download_pretrained(cfg)
    except Exception as exc:
        raise ModelSpecError(
            f"--clip {tag!r}: the CLIP weights of {name} ({_source(cfg)}) cannot be "
            f"downloaded ({' '.join(str(exc).split())}); run once online to cache them, or "
            "give a local copy with --clip PATH (a checkpoint file or an open_clip folder)"
        ) from None
    if not target:
        raise ModelSpecError(f"--clip {tag!r}: open_clip has no download for {name}")
    return str(target)


def _source(cfg: dict) -> str:
    """Where open_clip downloads a pretrained config's weights from (the hub repository)."""
    return f"hub {cfg['hf_hub'].rstrip('/')}" if cfg.get("hf_hub") else cfg.get("url", "?")


def _cached(cfg: dict) -> str | None:
    """The cached weights file of an open_clip pretrained config, found without the network:
    the hub file (or its ``.safetensors`` twin) open_clip would download, or the file of its
    URL in open_clip's own cache."""
    from open_clip.pretrained import HF_WEIGHTS_NAME, _get_safe_alternatives

    if cfg.get("hf_hub"):  # 'org/model/' (the default file) or 'org/model/file.bin'
        repo, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        for name in (*_get_safe_alternatives(filename), filename):
            found = hub.cached(repo, name)
            if found is not None:
                return found
    if cfg.get("url"):
        local = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if local.is_file():
            return str(local)
    return None


def load_clip(
    spec: str | os.PathLike = "openai",
    model_name: str = DEFAULT_CLIP_MODEL,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """Load the vision tower of an open_clip model, frozen, in eval mode.

    Args:
        spec: an open_clip pretrained tag for ``model_name`` (``openai``, ``laion2b_s34b_b88k``...),
            a local checkpoint file (``.safetensors``, ``.bin``, ``.pt``) with ``model_name``'s
            architecture, or a folder holding ``open_clip_config.json`` and the weights.
        model_name: an open_clip architecture name, or a JSON file with an open_clip model config
            (registered under the file's stem).
        device, dtype: where and in which precision CLIP runs.

    Raises:
        ModelSpecError: an unknown tag or architecture, weights missing offline, a bad file.
    """
    import open_clip
    from open_clip.pretrained import get_pretrained_cfg

    spec = str(spec)
    name = str(model_name)
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise ModelSpecError(f"--clip-model {name!r}: no such config file")
        open_clip.add_model_config(path)
        name = path.stem
    if name not in open_clip.list_models():
        raise ModelSpecError(
            f"--clip-model {model_name!r}: not an open_clip architecture (e.g. ViT-B-16) or a "
            "model-config JSON file"
        )
    kwargs: dict = {}
    path = Path(spec).expanduser()
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)  # open_clip and the hub log each failed try; one line only
    try:
        if path.is_dir():
            if not (path / "open_clip_config.json").is_file():
                raise ModelSpecError(f"--clip {spec!r}: folder without open_clip_config.json")
            model_id, weights = f"local-dir:{path}", None
        elif path.is_file():
            model_id, weights = name, str(path)
        else:
            model_id, weights = name, _download(spec, name)
            kwargs["force_quick_gelu"] = bool(get_pretrained_cfg(name, spec).get("quick_gelu"))
        try:
            model = open_clip.create_model(
                model_id, pretrained=weights, device=device, require_pretrained=True, **kwargs
            )
        except Exception as exc:
            detail = " ".join(str(exc).split())[:200]
            raise ModelSpecError(f"--clip {spec!r}: cannot load CLIP weights ({detail})") from None
    finally:
        logging.disable(previous)
    visual = model.visual.to(dtype=dtype)
    visual.requires_grad_(False).eval()
    return visual


def _vision(clip: torch.nn.Module) -> torch.nn.Module:
    visual = getattr(clip, "visual", clip)
    transformer = getattr(visual, "transformer", None)
    if not hasattr(visual, "forward_intermediates") or not hasattr(transformer, "resblocks"):
        raise ValueError(
            f"clip: {type(visual).__name__} is not an open_clip VisionTransformer "
            "(timm and ModifiedResNet towers are not supported)"
        )
    return visual


def _input_size(visual: torch.nn.Module) -> tuple[int, int]:
    size = getattr(visual, "image_size", 224)
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


def clip_tokens(visual: torch.nn.Module, pixels: torch.Tensor, block: int) -> torch.Tensor:
    """Tokens (B, 1 + L, D) after residual block ``block`` (0-based) of a CLIP vision transformer.

    open_clip's ``forward_intermediates`` runs the tower up to that block (``stop_early``; no
    final LayerNorm, ``normalize_intermediates=False``) and returns the class token apart from
    the L patch tokens; they are joined again here, class token first.

    Args:
        visual: an open_clip ``VisionTransformer`` (or a CLIP model holding one).
        pixels: (B, 3, H, W) images already resized and CLIP-normalised.
        block: the residual block whose output is taken.

    Raises:
        ValueError: a tower that is not a ViT, or ``block`` out of range.
    """
    visual = _vision(visual)
    blocks = len(visual.transformer.resblocks)
    if not 0 <= block < blocks:
        raise ValueError(f"block: expected 0 ≤ block < {blocks}, got {block}")
    out = visual.forward_intermediates(
        pixels,
        indices=[block],
        stop_early=True,
        normalize_intermediates=False,
        intermediates_only=True,
        output_fmt="NLC",
        output_extra_tokens=True,
    )
    (prefix,), (patches,) = out["image_intermediates_prefix"], out["image_intermediates"]
    return torch.cat([prefix, patches], dim=1)


def gram(tokens: torch.Tensor) -> torch.Tensor:
    """Gram matrix ``FᵀF / L`` of (B, L, D) tokens → (B, D, D), in float32."""
    features = tokens.float()
    return features.transpose(1, 2) @ features / features.shape[1]


def clip_preprocess(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pixels in [−1, 1] → CLIP input: [0, 1], bicubic resize to ``size``, CLIP normalisation.

    The normalisation is open_clip's ``OPENAI_DATASET_MEAN`` / ``OPENAI_DATASET_STD`` (open_clip
    is imported here, not with the module: it takes seconds).
    """
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    x = (image + 1.0) / 2.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = resize(x, size, interpolation="bicubic", antialias=True)
    mean = torch.tensor(OPENAI_DATASET_MEAN, dtype=x.dtype, device=x.device)
    std = torch.tensor(OPENAI_DATASET_STD, dtype=x.dtype, device=x.device)
    return normalize(x, mean, std)


@register("clip_style")
class ClipStyle(Constraint):
    """Style: match the Gram matrix of CLIP ViT tokens (block N, CLS dropped) to a reference's.

    Args:
        reference: (1 or B, 3, H, W) the style image, pixels in [−1, 1] (any size).
        clip: an open_clip model or its vision tower, or a spec for :func:`load_clip`
            (a pretrained tag such as ``"openai"``, a checkpoint file, an open_clip folder).
        block: residual block whose output tokens are used (0-based; 2 in the authors' code).
        size: CLIP's input (height, width); default the tower's ``image_size`` (224).
        codec: the model's codec (identity for pixel models).
        clip_model: the architecture when ``clip`` is a spec (default ViT-B-16).
    """

    @classmethod
    def from_image(cls, image: torch.Tensor, *, codec: Codec | None = None, **arguments):
        """The image is the style reference (``layerdecomp run clip_style image=ref.png``)."""
        return cls(image, codec=codec, **arguments)

    def __init__(
        self,
        reference: torch.Tensor,
        *,
        clip: torch.nn.Module | str | os.PathLike = "openai",
        block: int = 2,
        size: int | tuple[int, int] | None = None,
        codec: Codec | None = None,
        clip_model: str = DEFAULT_CLIP_MODEL,
    ):
        if not isinstance(reference, torch.Tensor) or reference.dim() != 4:
            raise ValueError("reference: expected a (B, 3, H, W) tensor")
        if reference.shape[1] != 3:
            raise ValueError(f"reference: expected 3 channels, got {reference.shape[1]}")
        if not isinstance(clip, torch.nn.Module):
            clip = load_clip(clip, clip_model, device=reference.device)
        self.visual = _vision(clip)
        self.block = int(block)
        if size is None:
            self.size = _input_size(self.visual)
        else:
            self.size = (int(size), int(size)) if isinstance(size, int) else tuple(size)
        self.codec = codec or IdentityCodec()
        with torch.no_grad():
            self.reference_gram = self.gram(reference)

    def gram(self, image: torch.Tensor) -> torch.Tensor:
        """Gram matrix (B, D, D) of an image batch in [−1, 1] (the constraint's feature map)."""
        parameter = next(self.visual.parameters())
        pixels = clip_preprocess(image.to(device=parameter.device).float(), self.size)
        tokens = clip_tokens(self.visual, pixels.to(parameter.dtype), self.block)
        return gram(tokens[:, 1:])

    def error(self, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            z = x0.detach().requires_grad_(True)
            diff = self.gram(self.codec.decode(z)) - self.reference_gram
            loss = 0.5 * diff.pow(2).sum()
            (grad,) = torch.autograd.grad(loss, z)
        residual = diff.detach().flatten(1).norm(dim=1)
        return -grad.detach().to(x0.dtype), residual.to(x0.device)


__all__ = [
    "DEFAULT_CLIP_MODEL",
    "ClipStyle",
    "clip_preprocess",
    "clip_tokens",
    "gram",
    "load_clip",
]
