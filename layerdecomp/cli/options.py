"""What the commands share: the model and sampling options, model loading, run metadata.

The options take their defaults from the task's config dataclass (:mod:`layerdecomp.tasks`),
the one source of defaults; :func:`config_from` builds that config back from the parsed options.
Commands import this module, never each other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

RECIPE_META = "layerdecomp.recipe"
"""``click.Context.meta`` key under which ``run`` hands its recipe to the task command."""

MODEL_OPTIONS = ("model", "model_config", "allow_pickle", "device", "dtype", "compile")

F = TypeVar("F", bound=Callable[..., Any])


def _apply(function: F, options: list[Callable[[F], F]]) -> F:
    for option in reversed(options):
        function = option(function)
    return function


DTYPE_HELP = "Network precision (auto: float16 on GPU, float32 on CPU)."


def model_options(function: F | None = None, *, dtype_help: str = DTYPE_HELP) -> Any:
    """The options that choose and place the model, shared by every command that loads one
    (``@model_options``, or ``@model_options(dtype_help=...)`` for a command whose ``auto``
    precision is another)."""
    if function is None:
        return lambda f: model_options(f, dtype_help=dtype_help)
    return _apply(
        function,
        [
            click.option(
                "--model",
                default="mini",
                show_default=True,
                help="Hub id, diffusers folder, .safetensors checkpoint, or 'mini'.",
            ),
            click.option(
                "--model-config",
                type=click.Path(path_type=Path),
                default=None,
                help="Diffusers folder with the config of a single-file checkpoint (offline).",
            ),
            click.option(
                "--allow-pickle", is_flag=True, help="Accept .ckpt/.bin/.pt weights (unsafe)."
            ),
            click.option(
                "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps."
            ),
            click.option(
                "--dtype",
                default="auto",
                show_default=True,
                type=click.Choice(["auto", "float16", "bfloat16", "float32"]),
                help=dtype_help,
            ),
            click.option(
                "--compile",
                default="none",
                show_default=True,
                type=click.Choice(["none", "default", "reduce-overhead", "max-autotune"]),
                help="torch.compile the denoising network (reduce-overhead: CUDA graphs on a "
                "GPU); the first calls of each shape compile, results match eager.",
            ),
            click.option("--seed", type=int, default=None, help="Seed (default: drawn, recorded)."),
            click.option("-q", "--quiet", is_flag=True, help="No progress bar and no notes."),
        ],
    )


def output_option(help: str) -> Callable[[F], F]:
    """``-o/--output PATH`` (required)."""
    return click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help=help)


class ScheduleType(click.ParamType):
    """``--lam``: a λ schedule as text (``linear:0.5:0.1``, ``constant:0.1``, ``0.1``)."""

    name = "SCHEDULE"

    def convert(self, value, param, ctx):
        from solvers import Schedule

        try:
            return Schedule.parse(value)
        except ValueError as exc:
            self.fail(str(exc).removeprefix("lam: "), param, ctx)


class _IntRange(click.IntRange):
    name = "integer"  # "'ten' is not a valid integer", not "... integer range"


class _FloatRange(click.FloatRange):
    name = "float"


def _click_type(leaf) -> Any:
    """The click type of an option leaf: its choices, bounds or schedule."""
    from solvers import Schedule

    if leaf.choices:
        return click.Choice(list(leaf.choices))
    if leaf.kind is Schedule:
        return ScheduleType()
    meta = leaf.meta
    if leaf.kind in (int, float):
        low = meta["gt"] if meta.get("gt") is not None else meta.get("ge")
        high = meta["lt"] if meta.get("lt") is not None else meta.get("le")
        kind = _IntRange if leaf.kind is int else _FloatRange
        return kind(
            low, high, min_open=meta.get("gt") is not None, max_open=meta.get("lt") is not None
        )
    return leaf.kind


def config_options(cls: type, exclude: tuple[str, ...] = ()) -> Callable[[F], F]:
    """One click option per option of the config class ``cls`` (:mod:`layerdecomp.options`):
    ``--name`` (``--name/--no-name`` for a flag), its default, type, bounds and help from the
    field; the class's earlier names (``ALIASES``) as hidden options that :func:`config_from`
    maps to the new ones with a deprecation line."""
    from ..options import option_fields

    leaves = option_fields(cls)

    def decorate(function: F) -> F:
        made = []
        for name, leaf in leaves.items():
            if name in exclude:
                continue
            flag = "--" + name.replace("_", "-")
            default = (
                str(leaf.default)
                if not isinstance(leaf.default, int | float | str | bool | None)
                else leaf.default
            )
            if leaf.kind is bool:
                made.append(
                    click.option(
                        f"{flag}/--no-{flag[2:]}",
                        name,
                        default=default,
                        show_default=True,
                        help=leaf.help,
                    )
                )
            else:
                made.append(
                    click.option(
                        flag,
                        name,
                        default=default,
                        show_default=True,
                        type=_click_type(leaf),
                        help=leaf.help,
                    )
                )
        hidden = [  # earlier names: mapped to the new ones, or refused naming them
            (old, _click_type(leaves[new]), None)
            for old, new in getattr(cls, "ALIASES", {}).items()
        ] + [
            (old, click.UNPROCESSED, f"use --{instead}")
            for old, instead in getattr(cls, "REPLACED", {}).items()
        ]
        for old, kind, told in hidden:
            flag = "--" + old.replace("_", "-")
            made.append(click.option(flag, old, default=None, hidden=True, type=kind, help=told))
        return _apply(function, made)

    return decorate


C = TypeVar("C")


def literal(text: str) -> Any:
    """A TOML literal (``4``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), else the text itself."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def config_from(cls: type[C], params: dict[str, Any]) -> C:
    """The task config built from the parsed options that name its options; an earlier name
    (``ALIASES``) given on the command line or in a recipe replaces the new one's value, with a
    one-line deprecation note."""
    from ..options import from_flat

    values = dict(params)
    for old, instead in getattr(cls, "REPLACED", {}).items():
        if values.get(old) is not None:
            from ..errors import InputError

            raise InputError(
                f"--{old.replace('_', '-')} is gone: use --{instead} ({instead.split()[0]} = "
                "... in recipes)"
            )
    for old, new in getattr(cls, "ALIASES", {}).items():
        if values.get(old) is not None:
            click.echo(
                f"note: --{old.replace('_', '-')} is now --{new.replace('_', '-')} "
                f"({old} = {new} in recipes); the old name will go",
                err=True,
            )
            values[new] = values[old]
    return from_flat(cls, values)


def quiet_libraries() -> None:
    """Keep diffusers/transformers to errors: the progress bar and one-line errors stay readable."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


MINI_NOTICE = (
    "note: the default model 'mini' is a 64x64 toy that knows emoji over textures only; "
    "pass a real checkpoint with --model (a hub id, a folder or a .safetensors file)"
)
"""Said once per run when the embedded model runs (``-q`` hides it)."""


def load_backend(params: dict[str, Any]):
    """Quiet the libraries and load the model the options name (``models.load_model``)."""
    quiet_libraries()
    from ..models import load_model

    if params["model"] == "mini" and not params.get("quiet"):
        click.echo(MINI_NOTICE, err=True)
    return load_model(
        params["model"],
        device=params["device"],
        dtype=params["dtype"],
        config=params["model_config"],
        allow_pickle=params["allow_pickle"],
        compile=params.get("compile", "none"),
    )


LARGE = 4
"""From this many times the model's native pixels (twice its side) a run is noted as large."""


def warn_if_large(command: str, backend, work: tuple[int, int], tile: int) -> None:
    """Say before a run starts when it works far above the model's native size, and what helps."""
    from ..models.base import native_size
    from ..tasks.tiles import far_above

    native = native_size(backend, default=None)
    factor = far_above(work, native)
    if tile or factor < LARGE or native is None:
        return
    click.echo(
        f"note: {command} works at {work[0]}x{work[1]} px, {factor:.0f}x the pixels of the "
        f"model's native {native[0]}x{native[1]}: beyond what it was trained on (expect "
        f"artefacts) and more than {factor:.0f}x as long as one native-size run; "
        f"--tile {max(native)} works in native-size tiles",
        err=True,
    )


def plain(params: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The named options, JSON-ready (paths as text)."""
    return {k: (str(params[k]) if isinstance(params[k], Path) else params[k]) for k in names}


def finish(command: str, result, backend, output: Path, started, loaded, extra, params) -> None:
    """Assemble a run's metadata (parameters, model, timings, versions) and write image + JSON."""
    from ..io import write_outputs
    from ..runs.fingerprint import versions

    metadata = {
        "command": command,
        **extra,
        "output": str(output),
        "model": backend.describe(),
        "device": str(backend.device),
        "dtype": str(backend.dtype).removeprefix("torch."),
        **result.record(),
        "versions": versions(),
    }
    recipe = click.get_current_context().meta.get(RECIPE_META)
    if recipe is not None:
        metadata["recipe"] = recipe
    metadata["parameters"] = {
        **metadata["parameters"],
        **plain(params, (*MODEL_OPTIONS, "quiet")),
    }
    metadata["timings"] = {
        "load": round(loaded - started, 4),
        **metadata["timings"],
        "total": round(time.perf_counter() - started, 4),
    }
    write_outputs(result.image, output, metadata)
    if not params["quiet"]:
        click.echo(
            f"wrote {output} ({result.size[0]}x{result.size[1]}, nfe={result.nfe}, "
            f"{metadata['timings']['total']:.1f}s)",
            err=True,
        )


__all__ = [
    "MODEL_OPTIONS",
    "RECIPE_META",
    "ScheduleType",
    "config_from",
    "finish",
    "literal",
    "load_backend",
    "model_options",
    "output_option",
    "plain",
    "quiet_libraries",
    "config_options",
    "warn_if_large",
]
