"""The constraint plugin registry: a decorator, a dict, and the ``layerdecomp.constraints`` group.

Built-ins register with :func:`register`; third-party distributions declare an entry point::

    [project.entry-points."layerdecomp.constraints"]
    colorize = "my_package.module:Colorize"

and their constraints appear in :func:`available` and :func:`get` once installed. A plugin that
fails to load is skipped with a warning and recorded: :func:`failed` lists it with its error.

This module is a leaf: it imports nothing from the package but :mod:`.base`. The built-ins
register when the package ``layerdecomp.constraints`` imports their modules (Python runs the
package's ``__init__`` before any submodule, so importing this module alone still sees them).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import entry_points

from .base import Constraint

ENTRY_POINT_GROUP = "layerdecomp.constraints"

_REGISTRY: dict[str, type[Constraint]] = {}
_loaded_entry_points: set[str] = set()
_FAILED: dict[str, str] = {}


class UnknownConstraintError(ValueError):
    """Raised for a constraint name that is neither built in nor installed."""


def _add(name: str, cls: type[Constraint], origin: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, Constraint)):
        raise TypeError(f"constraint {name!r} from {origin}: {cls!r} is not a Constraint subclass")
    previous = _REGISTRY.get(name)
    if previous is not None and previous is not cls:
        warnings.warn(
            f"constraint {name!r} is registered twice ({previous.__module__}."
            f"{previous.__qualname__} and {origin}); using the latter",
            stacklevel=3,
        )
    cls.name = name
    _REGISTRY[name] = cls


def register(name: str | None = None) -> Callable[[type[Constraint]], type[Constraint]]:
    """Class decorator: register a constraint as ``name`` (default: the lower-case class name)."""

    def decorator(cls: type[Constraint]) -> type[Constraint]:
        _add(name or cls.__name__.lower(), cls, f"{cls.__module__}.{cls.__qualname__}")
        return cls

    return decorator


def load_entry_points() -> None:
    """Import the constraints that installed distributions declare (each entry point once).

    A plugin that fails to import, or whose object is not a :class:`Constraint` subclass, is
    skipped: a ``UserWarning`` for library users, and a record that :func:`failed` returns.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _loaded_entry_points:
            continue
        _loaded_entry_points.add(key)
        try:
            _add(ep.name, ep.load(), f"entry point {ep.value}")
        except Exception as exc:  # a broken plugin must not break the framework
            _FAILED[ep.name] = f"{ep.value}: {type(exc).__name__}: {exc}"
            warnings.warn(
                f"constraint plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
            )


def available() -> dict[str, type[Constraint]]:
    """Every registered constraint, built-in and installed, by name."""
    load_entry_points()
    return dict(sorted(_REGISTRY.items()))


def failed() -> dict[str, str]:
    """The installed plugins that failed to load, by entry-point name.

    Each value reads ``"module:attr: ExceptionType: message"``. ``layerdecomp constraints`` lists
    them; a library user also gets one ``UserWarning`` per plugin from :func:`load_entry_points`.
    """
    load_entry_points()
    return dict(sorted(_FAILED.items()))


def get(name: str) -> type[Constraint]:
    """The constraint class registered as ``name``; the error lists the known names."""
    known = available()
    try:
        return known[name]
    except KeyError:
        raise UnknownConstraintError(
            f"unknown constraint {name!r}; known constraints: {', '.join(known) or 'none'}"
        ) from None


def build(name: str, /, **kwargs) -> Constraint:
    """Instantiate the constraint registered as ``name`` with ``kwargs``."""
    return get(name)(**kwargs)
