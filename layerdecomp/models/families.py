"""The one table from diffusers pipeline class to model family (``sd``, ``sdxl``, ``pixel``,
``sd3``, ``flux``).

Everything that depends on the family is read from this table: the backend class, the extra
keyword arguments for ``from_pretrained`` / ``from_single_file``, and whether the VAE stays in
float32 under float16. A spec's family is its ``model_index.json`` ``_class_name`` (the same key
diffusers' ``DiffusionPipeline.from_pretrained`` dispatches on); a loaded pipeline's family is its
class (or the nearest base class in the table, so subclasses work).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..errors import ModelSpecError

# Pipelines that look close to a supported one but are refused, with why (checked by name so
# that a hub repo is refused before its weights are downloaded).
_REFUSED = {
    "StableDiffusionXLImg2ImgPipeline": "SDXL refiner checkpoints are not supported; use a base "
    "model",
    "StableDiffusionInpaintPipeline": "inpainting-specific checkpoints are not supported; use a "
    "base text-to-image model",
    "StableDiffusionXLInpaintPipeline": "inpainting-specific checkpoints are not supported; use a "
    "base text-to-image model",
    "StableDiffusion3InpaintPipeline": "inpainting-specific checkpoints are not supported; use a "
    "base text-to-image model",
    "FluxFillPipeline": "Flux Fill checkpoints are not supported; use a base text-to-image model",
    "FluxControlPipeline": "Flux control checkpoints are not supported; use a base text-to-image "
    "model",
}

_NO_SAFETY_CHECKER = MappingProxyType(
    {"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False}
)


@dataclass(frozen=True)
class Family:
    """A model family: how its pipelines are loaded and which backend wraps them.

    Attributes:
        kind: ``"sd"``, ``"sdxl"``, ``"pixel"``, ``"sd3"`` or ``"flux"`` (the backend's ``kind``).
        label: a human name for error messages (``"Stable Diffusion 1.x/2.x"``).
        backend: the :class:`~layerdecomp.models.base.Backend` subclass.
        load_kwargs: extra keyword arguments for ``from_pretrained`` (SD: no safety checker).
        upcast_vae: keep the VAE in float32 under float16 when its config asks for it
            (``force_upcast``), as diffusers' SDXL pipeline does.
    """

    kind: str
    label: str
    backend: type
    load_kwargs: Mapping[str, Any] = field(default_factory=dict)
    upcast_vae: bool = False

    def single_file_kwargs(self) -> dict[str, Any]:
        """``load_kwargs`` for ``from_single_file``, which builds no feature extractor itself."""
        return {k: v for k, v in self.load_kwargs.items() if k != "feature_extractor"}


@functools.cache
def families() -> Mapping[type, Family]:
    """The table: diffusers pipeline class → :class:`Family` (built on first use)."""
    import diffusers

    from .flux import FluxBackend
    from .pixel import PixelBackend
    from .sd3 import SD3Backend
    from .stable_diffusion import StableDiffusionBackend

    sd = Family("sd", "Stable Diffusion 1.x/2.x", StableDiffusionBackend, _NO_SAFETY_CHECKER)
    sdxl = Family("sdxl", "SDXL base", StableDiffusionBackend, upcast_vae=True)
    pixel = Family("pixel", "pixel-space UNet2DModel", PixelBackend)
    sd3 = Family("sd3", "Stable Diffusion 3", SD3Backend)
    flux = Family("flux", "Flux", FluxBackend)
    return MappingProxyType(
        {
            diffusers.StableDiffusionPipeline: sd,
            diffusers.StableDiffusionXLPipeline: sdxl,
            diffusers.DDPMPipeline: pixel,
            diffusers.DDIMPipeline: pixel,
            diffusers.StableDiffusion3Pipeline: sd3,
            diffusers.FluxPipeline: flux,
        }
    )


def supported() -> str:
    """The supported families and their pipeline classes, for error messages."""
    by_label: dict[str, list[str]] = {}
    for cls, family in families().items():
        by_label.setdefault(family.label, []).append(cls.__name__)
    return "; ".join(f"{label} ({', '.join(names)})" for label, names in by_label.items())


def _unsupported(spec: str, name: str) -> ModelSpecError:
    reason = _REFUSED.get(name, "unsupported pipeline")
    return ModelSpecError(f"model {spec!r}: {name}: {reason} (supported: {supported()})")


def family_named(spec: str, class_name: Any) -> tuple[type, Family]:
    """The pipeline class and family of a ``model_index.json`` ``_class_name``.

    Raises:
        ModelSpecError: a class outside the table (refiners, inpainting pipelines, other models).
    """
    for cls, family in families().items():
        if cls.__name__ == class_name:
            return cls, family
    raise _unsupported(spec, str(class_name))


def family_of(pipeline: Any, spec: str = "<pipeline>") -> Family:
    """The family of a pipeline object or class: its class or nearest base class in the table.

    Raises:
        ModelSpecError: a pipeline class outside the table.
    """
    cls = pipeline if isinstance(pipeline, type) else type(pipeline)
    table = families()
    for base in cls.__mro__:
        if base in table:
            return table[base]
    raise _unsupported(spec, cls.__name__)


__all__ = ["Family", "families", "family_named", "family_of", "supported"]
