"""The options tree: task configs as nested frozen dataclasses, known flat by their leaf names.

A task config (``InpaintConfig``, ``DecomposeConfig``…) contains the solver's option groups
(:class:`solvers.SampleOptions`, :class:`solvers.RefineOptions`) and its own fields. Every leaf
field has a unique name across its tree and carries its help and bounds
(:func:`solvers.options.option`); this module reads the tree generically, so the command line
(:mod:`layerdecomp.cli.options`), the recipes, the web form and ``run.json`` all use the same
names, defaults and bounds:

- :func:`option_fields`: leaf name → :class:`OptionField` (path, default, type, help, bounds);
- :func:`configure`: a config with leaf overrides applied (``iters=3``), unknown names refused
  (:func:`refuse_unknown`: an earlier name is refused naming the option that replaced it);
- :func:`as_dict`: the leaves, JSON-ready (``lam`` as its text), for ``run.json``.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, TypeVar

from solvers import Schedule
from solvers.options import bounds_text, choices

from .errors import InputError

C = TypeVar("C")


def is_group(kind: Any) -> bool:
    """True for an options dataclass nested in a config (its fields all carry help)."""
    return (
        isinstance(kind, type)
        and is_dataclass(kind)
        and all("help" in f.metadata for f in fields(kind))
    )


@dataclass(frozen=True)
class OptionField:
    """One leaf of an options tree.

    Attributes:
        name: its name everywhere (the CLI's ``--name-with-dashes``, recipes, the form, run.json).
        path: the attribute path from the config (``("sampling", "refine", "iters")``).
        kind: ``int``, ``float``, ``bool``, ``str`` or :class:`solvers.Schedule`.
        default: the config class's default.
        help: the field's help text.
        meta: its bounds (``ge``, ``gt``, ``le``, ``lt``).
        choices: the values a ``Literal`` field allows, else ``None``.
        optional: ``None`` is a value (``work_side``: the model's native size).
        multiple: a tuple of values of ``kind``, given once per value (``--lora A --lora B``).
    """

    name: str
    path: tuple[str, ...]
    kind: Any
    default: Any
    help: str
    meta: dict[str, Any]
    choices: tuple[str, ...] | None
    optional: bool = False
    multiple: bool = False

    @property
    def bounds(self) -> str:
        """``"≥ 0"``, ``"in (0, 1)"``… (empty: unbounded)."""
        return bounds_text(self.meta)


def option_fields(cls: type) -> dict[str, OptionField]:
    """Leaf name → :class:`OptionField` for the config class ``cls`` (defaults of ``cls()``).

    Raises:
        TypeError: two leaves of the tree share a name (a tree must name each idea once).
    """
    found: dict[str, OptionField] = {}

    def walk(owner: type, default: Any, prefix: tuple[str, ...]) -> None:
        hints = typing.get_type_hints(owner)
        for f in fields(owner):
            kind, value = hints[f.name], getattr(default, f.name)
            if is_group(kind):
                walk(kind, value, (*prefix, f.name))
                continue
            if f.name in found:
                raise TypeError(f"{cls.__name__}: two options are named {f.name!r}")
            literal = choices(owner, f.name)
            args = typing.get_args(kind)
            optional = type(None) in args
            if optional and len(args) == 2:
                kind = next(a for a in args if a is not type(None))
            multiple = typing.get_origin(kind) is tuple
            if multiple:
                kind = typing.get_args(kind)[0]
            base = str if literal else (kind if kind in (int, float, bool, Schedule) else str)
            found[f.name] = OptionField(
                f.name,
                (*prefix, f.name),
                base,
                value,
                f.metadata.get("help", ""),
                dict(f.metadata),
                literal,
                optional,
                multiple,
            )

    walk(cls, cls(), ())
    return found


def renamed(cls: type) -> dict[str, str]:
    """Earlier names of ``cls``'s options → what replaces them (its ``REPLACED``): refused by
    every front end, naming the new option."""
    return dict(getattr(cls, "REPLACED", {}))


def unknown_option(cls: type, name: str, known: Iterable[str], what: str | None = None) -> str:
    """The one message for a name that is not an option: the option that replaced it, or the
    nearest known name."""
    what = what or f"not an option of {cls.__name__}"
    instead = renamed(cls).get(name)
    if instead is not None:
        return f"{name}: renamed; use {instead}"
    near = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else ""
    return f"{name}: {what}{hint}"


def refuse_unknown(cls: type, names: Iterable[str], also: Iterable[str] = ()) -> None:
    """Refuse the first of ``names`` that is neither an option of ``cls`` nor in ``also``.

    Raises:
        InputError: naming it, and the option that replaced it or the nearest known one.
    """
    known = [*option_fields(cls), *also]
    for name in names:
        if name not in known:
            raise InputError(unknown_option(cls, name, known))


def replace_leaves(config: C, values: dict[str, Any]) -> C:
    """``config`` with the leaves named in ``values`` replaced (validated by the dataclasses).

    Raises:
        InputError: an unknown or renamed name (with the new or nearest known one), or a value a
            field refuses.
    """
    known = option_fields(type(config))
    refuse_unknown(type(config), values)

    def rebuild(obj: Any, prefix: tuple[str, ...]) -> Any:
        changes = {}
        for f in fields(obj):
            path = (*prefix, f.name)
            value = getattr(obj, f.name)
            if is_group(type(value)):
                inner = rebuild(value, path)
                if inner is not value:
                    changes[f.name] = inner
            elif f.name in values and known[f.name].path == path:
                changes[f.name] = values[f.name]
        return replace(obj, **changes) if changes else obj

    try:
        return rebuild(config, ())
    except ValueError as exc:
        raise InputError(str(exc)) from None


def configure(cls: type[C], config: C | None, overrides: dict[str, Any]) -> C:
    """``config`` (default ``cls()``) with the leaf ``overrides`` applied (``steps=10``).

    Raises:
        InputError: an unknown option or a value the config refuses (an ``InputError`` is a
            ``ValueError``).
    """
    try:
        base = config if config is not None else cls()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if config is not None and not isinstance(config, cls):
        raise InputError(f"config: expected a {cls.__name__}, got {type(config).__name__}")
    return replace_leaves(base, overrides) if overrides else base


def as_dict(config: Any) -> dict[str, Any]:
    """The config's leaves by name, JSON-ready (a λ schedule as its text), for ``run.json``."""
    out = {}
    for name, leaf in option_fields(type(config)).items():
        value: Any = config
        for part in leaf.path:
            value = getattr(value, part)
        out[name] = str(value) if isinstance(value, Schedule) else value
    return out


__all__ = [
    "OptionField",
    "as_dict",
    "configure",
    "is_group",
    "option_fields",
    "refuse_unknown",
    "renamed",
    "replace_leaves",
    "unknown_option",
]
