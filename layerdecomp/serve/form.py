"""The web form's fields, generated from :class:`~layerdecomp.layers.DecomposeConfig`'s options.

Each option the form takes keeps the command line's name, default, bounds and help
(:func:`layerdecomp.options.option_fields`); the server adds only upper limits of its own
(:data:`SERVER_CAPS`, so that one request cannot hold the queue for hours). FastAPI validates
the fields from the signature :func:`form_signature` builds (a bad value is a 422 naming it),
and ``GET /api/info`` hands the same specs to the page (:func:`form_options`).
"""

from __future__ import annotations

import inspect
from typing import Annotated, Any

from fastapi import File, Form, UploadFile

from ..layers import DecomposeConfig
from ..options import OptionField, option_fields

FORM_OPTIONS = (
    "updates",
    "work_side",
    "samples",
    "runs",
    "iters",
    "noise_level",
    "guidance",
    "negative_prompt",
    "matting",
)
"""The options of :class:`DecomposeConfig` a request may set, in the page's order."""

SERVER_CAPS = {"updates": 1000, "samples": 64, "runs": 16, "iters": 100, "guidance": 100}
"""Upper limits this server puts on options the config leaves unbounded above."""


def _leaves(settings) -> dict[str, OptionField]:
    leaves = option_fields(DecomposeConfig)
    return {name: leaves[name] for name in FORM_OPTIONS}


def _upper(name: str, leaf: OptionField, settings) -> tuple[str, Any] | None:
    if name == "work_side":
        return "le", settings.max_work_side
    if leaf.meta.get("lt") is not None:
        return "lt", leaf.meta["lt"]
    if leaf.meta.get("le") is not None:
        return "le", leaf.meta["le"]
    return ("le", SERVER_CAPS[name]) if name in SERVER_CAPS else None


def form_options(settings) -> dict[str, dict[str, Any]]:
    """Name → ``{kind, default, help, min, max, min_open, max_open}`` of every form option (for
    ``GET /api/info`` and the page's inputs)."""
    out = {}
    for name, leaf in _leaves(settings).items():
        upper = _upper(name, leaf, settings)
        low = leaf.meta.get("gt") if leaf.meta.get("gt") is not None else leaf.meta.get("ge")
        out[name] = {
            "kind": leaf.kind.__name__,
            "default": leaf.default,
            "help": leaf.help,
            "min": low,
            "min_open": leaf.meta.get("gt") is not None,
            "max": upper[1] if upper else None,
            "max_open": bool(upper and upper[0] == "lt"),
        }
    return out


def form_signature(settings) -> inspect.Signature:
    """The signature FastAPI reads for a request's multipart fields: the image, the prompts, the
    seed, the formats, then :data:`FORM_OPTIONS` with their bounds and help."""
    keyword = inspect.Parameter.KEYWORD_ONLY

    def field(name: str, annotation: Any, default: Any = inspect.Parameter.empty):
        return inspect.Parameter(name, keyword, default=default, annotation=annotation)

    params = [
        field("image", Annotated[UploadFile, File(description="The image to decompose.")]),
        field("fg", Annotated[list[str], Form(description="Foreground prompt (one per layer).")]),
        field("bg", Annotated[str, Form(description="Background prompt.")]),
        field("seed", Annotated[int | None, Form(ge=0, lt=2**63)], None),
        field("formats", Annotated[list[str] | None, Form(description="Output formats.")], None),
    ]
    for name, leaf in _leaves(settings).items():
        bounds: dict[str, Any] = {}
        for key in ("ge", "gt"):
            if leaf.meta.get(key) is not None:
                bounds[key] = leaf.meta[key]
        upper = _upper(name, leaf, settings)
        if upper:
            bounds[upper[0]] = upper[1]
        kind = leaf.kind | None if leaf.optional else leaf.kind
        form = Form(description=leaf.help, **bounds)
        params.append(field(name, Annotated[kind, form], leaf.default))
    return inspect.Signature(params)


__all__ = ["FORM_OPTIONS", "SERVER_CAPS", "form_options", "form_signature"]
