"""``layerdecomp constraints``: every registered constraint, and the plugins that failed to load."""

from __future__ import annotations

from importlib.metadata import entry_points

import click


def _origins() -> dict[str, str]:
    from ..constraints import ENTRY_POINT_GROUP

    origins = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        origins[ep.name] = f"{dist.name} {dist.version}" if dist is not None else ep.value
    return origins


@click.command("constraints")
def constraints():
    """List every registered constraint, built-in or plugin, with its description."""
    from ..constraints import available, failed

    known = available()
    broken = failed()
    origins = _origins()
    width = max(len(name) for name in [*known, *broken])
    for name, cls in known.items():
        origin = "built-in" if cls.__module__.startswith("layerdecomp.") else None
        origin = origin or origins.get(name, cls.__module__)
        click.echo(f"{name:<{width}}  {cls.description()}  [{origin}]")
    for name, error in broken.items():
        click.echo(f"{name:<{width}}  failed to load: {error}  [{origins.get(name, 'plugin')}]")
