"""Click options generated from option dataclasses, and what the commands share.

Every option a command takes comes from a declaration (:mod:`layerdecomp.options` reads its
fields: name, default, type, bounds, help): a task's config, the model options
(:class:`~layerdecomp.models.options.ModelOptions`), the run options
(:class:`~layerdecomp.tasks.declare.RunOptions`), the server's settings. An earlier name of an
option (the config's ``REPLACED``) is a hidden option that is refused, naming the new one.
Commands import this module, never each other.
"""

from __future__ import annotations

from typing import Any

import click

RECIPE_META = "layerdecomp.recipe"
"""``click.Context.meta`` key under which ``run`` hands its recipe to the task command."""

SHORT = {"quiet": "-q", "output": "-o"}
"""The options that also have a one-letter flag."""


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


def click_type(leaf) -> Any:
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


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def click_options(
    cls: type, helps: dict[str, str] | None = None, exclude: tuple[str, ...] = ()
) -> list[click.Option]:
    """One click option per option of the dataclass ``cls``: ``--name`` with the field's
    default, type, bounds and help; a flag for a ``bool`` (``--name/--no-name`` when it is on
    by default); ``helps`` replaces a field's help where a command means more by it. The
    class's earlier names (``REPLACED``) are hidden options, refused when given."""
    from ..options import option_fields, renamed

    made = []
    for name, leaf in option_fields(cls).items():
        if name in exclude:
            continue
        text = (helps or {}).get(name, leaf.help)
        names = [flag(name), *([SHORT[name]] if name in SHORT else [])]
        if leaf.kind is bool and leaf.default is False:
            made.append(click.Option([*names, name], is_flag=True, default=False, help=text))
            continue
        if leaf.kind is bool:
            made.append(
                click.Option(
                    [f"{flag(name)}/--no-{flag(name)[2:]}", name],
                    default=leaf.default,
                    show_default=True,
                    help=text,
                )
            )
            continue
        if leaf.multiple:
            made.append(
                click.Option([*names, name], multiple=True, type=click_type(leaf), help=text)
            )
            continue
        default = leaf.default
        if not isinstance(default, int | float | str | bool | None):
            default = str(default)
        made.append(
            click.Option(
                [*names, name],
                default=default,
                show_default=default is not None,
                type=click_type(leaf),
                help=text,
            )
        )
    for old in renamed(cls):
        made.append(click.Option([flag(old), old], hidden=True, type=click.UNPROCESSED))
    return made


def with_options(*groups: list[click.Option]):
    """A decorator that adds the generated options (:func:`click_options`) to a command."""

    def decorate(function):
        for group in reversed(groups):
            for option in reversed(group):
                function = option(function) if callable(option) else _attach(function, option)
        return function

    return decorate


def _attach(function, option: click.Option):
    if isinstance(function, click.Command):
        function.params.append(option)
    else:
        function.__click_params__ = [*getattr(function, "__click_params__", []), option]
    return function


def take(cls: type, params: dict[str, Any]):
    """An instance of the options dataclass ``cls`` from the parsed ``params`` that name its
    fields (removed from ``params``)."""
    from dataclasses import fields

    from ..errors import InputError

    values = {f.name: params.pop(f.name) for f in fields(cls) if f.name in params}
    try:
        return cls(**values)
    except ValueError as exc:
        raise InputError(str(exc)) from None


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


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables by which a user sets the CPU threads; then the command leaves them."""


def pick_threads() -> int:
    """torch's CPU threads for a run: at most torch's default (the cores), less the cores other
    work keeps busy (the load average of the last minute), at least 1; unchanged when
    ``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` is set. On 2 cores the README job took 19-21 s
    with 2 threads and 25 s with 1 when idle, but 58-69 s with 2 and 40 s with 1 beside two
    busy processes (``docs/results.md``): threads that wait for busy cores cost more than they
    give. Returns the threads set."""
    import os

    import torch

    if any(os.environ.get(name) for name in THREAD_VARIABLES) or not hasattr(os, "getloadavg"):
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    free = (cores or 1) - round(os.getloadavg()[0])
    threads = max(1, min(torch.get_num_threads(), free))
    torch.set_num_threads(threads)
    return threads


def load_backend(model, quiet: bool = False):
    """Quiet the libraries, choose the CPU threads (:func:`pick_threads`) and load the model the
    options name (:meth:`~layerdecomp.models.options.ModelOptions.load`)."""
    quiet_libraries()
    pick_threads()
    if model.model == "mini" and not quiet:
        click.echo(MINI_NOTICE, err=True)
    return model.load()


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


__all__ = [
    "LARGE",
    "MINI_NOTICE",
    "RECIPE_META",
    "ScheduleType",
    "click_options",
    "click_type",
    "flag",
    "take",
    "with_options",
    "literal",
    "load_backend",
    "pick_threads",
    "quiet_libraries",
    "warn_if_large",
]
