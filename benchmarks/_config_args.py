"""A task config's options as argparse options, read from their one declaration.

The benchmark scripts take a task's options (``--updates 3``, ``--orient-by inpainting``) the way
the command line does: one ``--name`` per leaf of the config's dataclass tree
(:func:`layerdecomp.options.option_fields`), its type, choices, bounds and help from the field;
the config's earlier names (``REPLACED``: ``--iterations``) are hidden options, refused naming
the new one. A flag takes a value (``--anchor no``), as the scripts always have. Options left
out keep the config's default; :func:`config_overrides` collects the given ones for
:func:`layerdecomp.options.configure`, which checks their bounds.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from layerdecomp.options import OptionField, option_fields, renamed, unknown_option


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


def add_config_arguments(
    parser: argparse.ArgumentParser, cls: type, exclude: tuple[str, ...] = ()
) -> list[str]:
    """Add ``--name`` for every option of ``cls`` but ``exclude`` to ``parser`` (in a group
    titled after ``cls``), unset by default; returns their names."""
    group = parser.add_argument_group(f"{cls.__name__} options (default: the config's own)")
    leaves = option_fields(cls)
    flags = config_flags(cls, exclude)
    for name, parse in flags.items():
        leaf = leaves[name]
        default = repr(leaf.default) if isinstance(leaf.default, str) else str(leaf.default)
        metavar = "BOOL" if leaf.kind is bool else "N" if leaf.kind in (int, float) else "TEXT"
        extra = f"; {leaf.bounds}" if leaf.bounds else ""
        group.add_argument(
            flag(name),
            dest=name,
            type=parse,
            default=None,
            metavar=None if leaf.choices else metavar,
            choices=leaf.choices,
            help=f"{leaf.help} (default {default}{extra})".replace("%", "%%"),
        )
    for old in renamed(cls):
        group.add_argument(flag(old), dest=old, action=refused(cls), help=argparse.SUPPRESS)
    return list(flags)


def config_overrides(args: argparse.Namespace, names: list[str]) -> dict[str, Any]:
    """The options among ``names`` given on the command line, by name."""
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


__all__ = [
    "add_config_arguments",
    "config_flags",
    "config_overrides",
    "flag",
    "leaf_parser",
    "refused",
    "yes",
]
