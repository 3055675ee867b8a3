"""A task config's options as argparse options, read from their one declaration.

The benchmark scripts take a task's options (``--updates 3``, ``--orient-by inpainting``) the way
the command line does: one ``--name`` per leaf of the config's dataclass tree
(:func:`layerdecomp.options.option_fields`), its type, choices, bounds and help from the field;
the config's earlier names (``REPLACED``: ``--iterations``) are hidden options, refused naming
the new one. A flag takes a value (``--anchor no``), as the scripts always have. Options left
out keep the config's default; :func:`config_overrides` collects the given ones for
:func:`layerdecomp.options.configure`, which checks their bounds (:func:`parse_config` does both
and reports a refused value as a usage error).

A script may take only some of a config's options (``only``: the ones it varies), from several
configs (one call per class: a task config and :class:`layerdecomp.models.options.ModelOptions`),
and give an option its own default where the benchmark's legitimately differs from the task's
(``defaults``: 2 steps for a speed test), the reason stated in the option's help. A benchmark
option that a config names with another meaning is renamed, its old name refused with
:func:`add_refused`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from layerdecomp.errors import InputError
from layerdecomp.options import OptionField, configure, option_fields, renamed, unknown_option

C = TypeVar("C")


def yes(text: str) -> bool:
    """A flag's true/false value (``--anchor false``)."""
    if text.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() in ("1", "true", "yes")


def leaf_parser(leaf: OptionField) -> Callable[[str], Any]:
    """The text → value function of one option (its type; its choices and bounds are checked by
    argparse's ``choices`` and by :func:`layerdecomp.options.configure`)."""
    from solvers import Schedule

    if leaf.kind is bool:
        return yes
    kind = Schedule.parse if leaf.kind is Schedule else leaf.kind

    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    parse.__name__ = getattr(leaf.kind, "__name__", leaf.name)  # argparse's "invalid int value"
    return parse


def config_flags(cls: type, exclude: tuple[str, ...] = ()) -> dict[str, Callable[[str], Any]]:
    """Option name → its parser for every option of ``cls`` but ``exclude`` (the options a
    script sets itself)."""
    return {
        name: leaf_parser(leaf) for name, leaf in option_fields(cls).items() if name not in exclude
    }


def flag(name: str) -> str:
    """An option's ``--flag`` (``orient_by`` → ``--orient-by``)."""
    return "--" + name.replace("_", "-")


def refused(cls: type) -> type[argparse.Action]:
    """The action of an earlier name of one of ``cls``'s options: an error naming the new one."""

    class Refused(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(unknown_option(cls, self.dest, option_fields(cls)))

    return Refused


def shown(value: Any) -> str:
    """A default as the help shows it (text quoted)."""
    return repr(value) if isinstance(value, str) else str(value)


def option_help(leaf: OptionField, own: tuple[Any, str] | None = None) -> str:
    """The help of one option: the field's help, its default (or the benchmark's own default,
    why, and the config's) and its bounds."""
    extra = f"; {leaf.bounds}" if leaf.bounds else ""
    if own is None:
        default = f"default {shown(leaf.default)}"
    else:
        value, why = own
        default = f"default {shown(value)} here: {why}; the config's {shown(leaf.default)}"
    return f"{leaf.help} ({default}{extra})".replace("%", "%%")


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    exclude: tuple[str, ...] = (),
    *,
    only: tuple[str, ...] | None = None,
    defaults: Mapping[str, tuple[Any, str]] | None = None,
) -> list[str]:
    """Add ``--name`` for every option of ``cls`` but ``exclude`` (or for those in ``only``) to
    ``parser``, in a group titled after ``cls``; returns their names.

    An option is unset by default (the config's default applies) unless ``defaults`` gives it
    the benchmark's own: ``{"steps": (2, "a speed test times 2 steps")}`` (``None``: unset, the
    reason saying what that means). The earlier names of the options added (``--iterations``)
    are refused naming the new one.

    Raises:
        KeyError: a name in ``only``, ``exclude`` or ``defaults`` that ``cls`` does not have, or
            a default for an option not added.
    """
    leaves = option_fields(cls)
    defaults = dict(defaults or {})
    for name in (*(only or ()), *exclude, *defaults):
        if name not in leaves:
            raise KeyError(f"{name!r} is not an option of {cls.__name__}")
    flags = config_flags(cls, exclude)
    if only is not None:
        flags = {name: parse for name, parse in flags.items() if name in only}
    for name in defaults:
        if name not in flags:
            raise KeyError(f"{name!r}: a default for an option not taken")
    title = f"{cls.__name__} options"
    if not defaults:
        title += " (default: the config's own)"
    group = parser.add_argument_group(title)
    for name, parse in flags.items():
        leaf = leaves[name]
        metavar = "BOOL" if leaf.kind is bool else "N" if leaf.kind in (int, float) else "TEXT"
        group.add_argument(
            flag(name),
            dest=name,
            type=parse,
            default=defaults[name][0] if name in defaults else None,
            metavar=None if leaf.choices else metavar,
            choices=leaf.choices,
            help=option_help(leaf, defaults.get(name)),
        )
    for old, new in renamed(cls).items():
        if new.split()[0] not in flags:
            continue  # the option that replaced it is not one of this script's
        try:
            group.add_argument(flag(old), dest=old, action=refused(cls), help=argparse.SUPPRESS)
        except argparse.ArgumentError:
            pass  # the script has an option of its own by that name
    return list(flags)


def add_refused(parser: argparse.ArgumentParser, name: str, message: str) -> None:
    """A hidden ``--name`` that is an error saying ``message`` (a benchmark option renamed
    because a config names another idea so: ``--guidance`` → ``--guidance-scale``)."""

    class Refused(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            parser.error(f"{option_string}: {message}")

    parser.add_argument(flag(name), dest=f"refused_{name}", action=Refused, help=argparse.SUPPRESS)


def config_overrides(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line, by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def parse_config(
    parser: argparse.ArgumentParser,
    cls: type[C],
    args: argparse.Namespace,
    names: list[str],
    fixed: Mapping[str, Any] | None = None,
) -> C:
    """The ``cls`` config of the options among ``names`` given (or defaulted by the benchmark)
    and the ``fixed`` ones the script sets itself; a value the config refuses (out of bounds) is
    a usage error naming it."""
    try:
        return configure(cls, None, {**config_overrides(args, names), **(fixed or {})})
    except InputError as exc:
        parser.error(str(exc))


def parse_placement(
    parser: argparse.ArgumentParser, args: argparse.Namespace, names: list[str]
) -> tuple[Any, Any]:
    """The ``(torch.device, torch.dtype)`` that the :class:`ModelOptions` ``device`` and
    ``dtype`` among ``names`` name (``auto``: cuda, then mps, then cpu; float16 on a GPU), for a
    script that builds its own network; an unknown or absent device is a usage error."""
    from layerdecomp.errors import ModelSpecError
    from layerdecomp.models import select_device, select_dtype
    from layerdecomp.models.options import ModelOptions

    placed = parse_config(parser, ModelOptions, args, names)
    try:
        device = select_device(placed.device)
    except ModelSpecError as exc:
        parser.error(str(exc))
    return device, select_dtype(placed.dtype, device)


__all__ = [
    "add_config_arguments",
    "add_refused",
    "config_flags",
    "config_overrides",
    "flag",
    "leaf_parser",
    "option_help",
    "parse_config",
    "parse_placement",
    "refused",
    "shown",
    "yes",
]
