"""The constraint plugin registry: a decorator, a dict, and the ``layerdecomp.constraints`` group.

Built-ins register with :func:`register`; third-party distributions declare an entry point::

    [project.entry-points."layerdecomp.constraints"]
    colorize = "my_package.module:Colorize"

and their constraints appear in :func:`available` and :func:`get` once installed.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from importlib.metadata import entry_points

from .base import Constraint

ENTRY_POINT_GROUP = "layerdecomp.constraints"

_REGISTRY: dict[str, type[Constraint]] = {}
_loaded_entry_points: set[str] = set()


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
    """Import the constraints that installed distributions declare (each entry point once)."""
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        if key in _loaded_entry_points:
            continue
        _loaded_entry_points.add(key)
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break the framework
            warnings.warn(
                f"constraint plugin {ep.name!r} ({ep.value}) failed to load: {exc}", stacklevel=2
            )
            continue
        _add(ep.name, cls, f"entry point {ep.value}")


def available() -> dict[str, type[Constraint]]:
    """Every registered constraint, built-in and installed, by name."""
    from . import builtin  # noqa: F401  (registers the built-ins)

    load_entry_points()
    return dict(sorted(_REGISTRY.items()))


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
