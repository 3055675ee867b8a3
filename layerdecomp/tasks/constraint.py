"""Any registered constraint, run by name on an image: ``layerdecomp run NAME image=… output=…``.

The input image (resized up to the model's size multiple) goes to the constraint's
``from_image(image, codec=backend, **arguments)``; :func:`~.generate.generate` samples under it
from pure noise and the result comes back at the input's size. Built-in constraints and plugins
(entry point group ``layerdecomp.constraints``) run alike; a constraint that cannot be built from
one image says why in one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kornia.geometry.transform import resize
from PIL import Image

from ..codecs import Backend
from ..constraints import get
from ..errors import InputError
from ..io import image_to_tensor, load_image, to_rgb
from ..options import configure
from .config import SamplingConfig
from .generate import ConstrainedOutput, ImageLike, generate
from .tiles import round_up


@dataclass(frozen=True)
class ConstraintConfig(SamplingConfig):
    """Parameters of :func:`run_constraint`: :class:`SamplingConfig` alone (a constraint's own
    arguments come separately)."""


def one_image_constraint(name: str) -> type:
    """The registered constraint ``name``, checked before any work.

    Raises:
        InputError: an unknown name (the known ones listed), or a constraint that cannot be
            built from one image (its reason).
    """
    try:
        cls = get(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if getattr(cls, "not_from_one_image", None):
        raise InputError(f"constraint {name!r} cannot run on one image: {cls.not_from_one_image}")
    return cls


def run_constraint(
    backend: Backend,
    name: str,
    image: ImageLike,
    *,
    arguments: dict[str, Any] | None = None,
    config: ConstraintConfig | None = None,
    seed: int | None = None,
    callback: Callable[[dict], None] | None = None,
    disable_progress: bool | None = None,
    **overrides: Any,
) -> ConstrainedOutput:
    """Sample under the constraint registered as ``name``, built from ``image``.

    Args:
        backend: a loaded model.
        name: a registered constraint (:func:`layerdecomp.constraints.available`).
        image: the input image (PIL or path).
        arguments: keyword arguments of the constraint's ``from_image``.
        config: the parameters (:class:`ConstraintConfig`); ``overrides`` name its options.
        seed, callback, disable_progress: see :func:`~.generate.generate`.

    Raises:
        InputError: an unknown constraint, or one that cannot be built from the image (the
            constraint's own reason).
    """
    start = time.perf_counter()
    config = configure(ConstraintConfig, config, overrides)
    cls = one_image_constraint(name)
    arguments = dict(arguments or {})
    rgb = to_rgb(image if isinstance(image, Image.Image) else load_image(image))
    multiple = backend.size_multiple
    work = (round_up(rgb.width, multiple), round_up(rgb.height, multiple))
    pixels = image_to_tensor(rgb)
    if work != rgb.size:
        pixels = resize(pixels, (work[1], work[0]), interpolation="bicubic", antialias=True)
    try:
        constraint = cls.from_image(pixels.to(backend.device), codec=backend, **arguments)
    except NotImplementedError as exc:
        raise InputError(f"constraint {name!r} cannot run on one image: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise InputError(f"constraint {name!r}: cannot be built from the image ({exc})") from None
    return generate(
        backend,
        constraint,
        work,
        config,
        size=rgb.size,
        seed=seed,
        callback=callback,
        disable_progress=disable_progress,
        parameters={"constraint": name, "constraint_arguments": arguments},
        started=start,
    )


__all__ = ["ConstraintConfig", "one_image_constraint", "run_constraint"]
