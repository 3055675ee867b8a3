"""A request's fields: the image, the prompts, the seed, the formats, and the options of
:class:`~layerdecomp.layers.DecomposeConfig` the form shows (:data:`FORM_OPTIONS`).

:data:`FORM_OPTIONS` is the one list of those options: which, in what order, under which label,
and which sit under "More options". Each keeps the command line's name, default, bounds and help
(:func:`layerdecomp.options.option_fields`); the server adds only its own upper limits
(:meth:`.settings.Settings.limit`). From these:

- :func:`form_signature`: the signature FastAPI reads (a bad value is a 422 naming it);
- :func:`form_options`: the specs ``GET /api/info`` hands the page, which builds its inputs
  from them (the page names no option itself);
- :func:`refuse_unknown_fields`: a field the request does not have is refused, naming it (an
  earlier name names the option that replaced it).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import File, Form, UploadFile

from ..errors import InputError
from ..layers import DecomposeConfig
from ..options import OptionField, option_fields, unknown_option
from .settings import Settings


def _work_side_blank(native_side: int | None) -> str:
    """What an empty work size means (the task's rule: the model's native size, if known)."""
    return f"{native_side} (the model's)" if native_side else "the image's"


@dataclass(frozen=True)
class FormOption:
    """An option of :class:`DecomposeConfig` the form shows.

    Attributes:
        name: the option's name (as on the command line).
        label: the page's label of its input.
        more: shown under "More options".
        step: the step of its number input (default: 1 for an integer, any for a number).
        blank: what an empty field means, from the model's native side (an optional option).
    """

    name: str
    label: str
    more: bool = False
    step: float | None = None
    blank: Callable[[int | None], str] | None = None


FORM_OPTIONS = (
    FormOption("updates", "Mask updates"),
    FormOption("work_side", "Work size (px)", blank=_work_side_blank),
    FormOption("samples", "Samples per layer", more=True),
    FormOption("runs", "Runs", more=True),
    FormOption("iters", "Newton iterations", more=True),
    FormOption("noise_level", "Noise level", more=True, step=0.01),
    FormOption("guidance", "Guidance", more=True, step=0.5),
    FormOption("negative_prompt", "Negative prompt", more=True),
    FormOption("matting", "Matte the edges", more=True),
)
"""The options a request may set, in the page's order (the only list of them)."""

_EMPTY = inspect.Parameter.empty
FIELDS: dict[str, tuple[Any, Any]] = {
    "image": (Annotated[UploadFile, File(description="The image to decompose.")], _EMPTY),
    "fg": (Annotated[list[str], Form(description="Foreground prompt (one per layer).")], _EMPTY),
    "bg": (Annotated[str, Form(description="Background prompt.")], _EMPTY),
    "seed": (Annotated[int | None, Form(ge=0, lt=2**63, description="Random seed.")], None),
    "formats": (Annotated[list[str] | None, Form(description="Output formats.")], None),
}
"""The request's fields beside :data:`FORM_OPTIONS`: name → (annotation, default)."""


def _leaves() -> dict[str, tuple[FormOption, OptionField]]:
    leaves = option_fields(DecomposeConfig)
    return {shown.name: (shown, leaves[shown.name]) for shown in FORM_OPTIONS}


def _bounds(leaf: OptionField, settings: Settings) -> dict[str, Any]:
    """The option's bounds as ``ge``/``gt``/``le``/``lt``: the config's, and this server's upper
    limit where that is tighter."""
    keys = ("ge", "gt", "le", "lt")
    bounds = {key: leaf.meta[key] for key in keys if leaf.meta.get(key) is not None}
    cap = settings.limit(leaf.name)
    upper = bounds.get("lt", bounds.get("le"))
    if cap is not None and (upper is None or cap < upper):
        bounds.pop("lt", None)
        bounds["le"] = cap
    return bounds


def form_options(settings: Settings, native_side: int | None = None) -> list[dict[str, Any]]:
    """The form's options in order, for ``GET /api/info`` and the page's inputs: each one's
    ``name``, ``label``, ``more``, ``kind`` (``int``, ``float``, ``bool``, ``str``), ``choices``,
    ``default``, ``help``, ``min``/``max`` (``min_open``/``max_open``: excluded), ``step`` and
    ``placeholder`` (what an empty field means; ``native_side``: the model's)."""
    out = []
    for shown, leaf in _leaves().values():
        bounds = _bounds(leaf, settings)
        low = bounds.get("gt", bounds.get("ge"))
        high = bounds.get("lt", bounds.get("le"))
        out.append(
            {
                "name": shown.name,
                "label": shown.label,
                "more": shown.more,
                "kind": leaf.kind.__name__,
                "choices": list(leaf.choices) if leaf.choices else None,
                "default": leaf.default,
                "help": leaf.help,
                "min": low,
                "min_open": "gt" in bounds,
                "max": high,
                "max_open": "lt" in bounds,
                "step": shown.step,
                "placeholder": shown.blank(native_side) if shown.blank else None,
            }
        )
    return out


def form_signature(settings: Settings) -> inspect.Signature:
    """The signature FastAPI reads for a request's multipart fields: :data:`FIELDS`, then
    :data:`FORM_OPTIONS` with their bounds and help."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(name, keyword, annotation=annotation, default=default)
        for name, (annotation, default) in FIELDS.items()
    ]
    for name, (_, leaf) in _leaves().items():
        kind = leaf.kind | None if leaf.optional else leaf.kind
        form = Form(description=leaf.help, **_bounds(leaf, settings))
        params.append(
            inspect.Parameter(name, keyword, annotation=Annotated[kind, form], default=leaf.default)
        )
    return inspect.Signature(params)


def refuse_unknown_fields(names: Iterable[str]) -> None:
    """Refuse the first of ``names`` that is not a field of the request.

    Raises:
        InputError: naming it, and the option that replaced it (``iterations: renamed; use
            updates``) or the nearest field; an option of the config the form does not take
            says so.
    """
    known = [*FIELDS, *(shown.name for shown in FORM_OPTIONS)]
    options = option_fields(DecomposeConfig)
    for name in names:
        if name not in known:
            what = "not a field of this request"
            if name in options:
                what = "not an option this server takes (it keeps the default)"
            raise InputError(unknown_option(DecomposeConfig, name, known, what))


__all__ = [
    "FIELDS",
    "FORM_OPTIONS",
    "FormOption",
    "form_options",
    "form_signature",
    "refuse_unknown_fields",
]
