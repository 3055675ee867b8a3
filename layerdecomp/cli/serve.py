"""``layerdecomp serve``: the web page and HTTP API for decomposition (the ``serve`` extra).

The address is bound first (a port in use is one error line at once), then the model is loaded,
once, and shared by every request; runs queue one at a time. Binds to 127.0.0.1 unless ``--host``
says otherwise: the server has no accounts, so only expose it on a network you trust.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time

import click

from ..models.options import ModelOptions
from ..tasks.declare import RunOptions
from .options import click_options, load_backend, take, with_options

EXTRA = ("fastapi", "uvicorn", "multipart")
"""Modules of the ``serve`` extra (``multipart`` is python-multipart, for uploads)."""


def missing_extra() -> list[str]:
    """The modules of the ``serve`` extra that cannot be imported."""
    missing = []
    for name in EXTRA:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, say
            found = False
        if not found:
            missing.append(name)
    return missing


def _settings() -> type:
    """The server's limits (:class:`layerdecomp.serve.settings.Settings`, their one
    declaration), read without importing the web extra."""
    from ..serve.settings import Settings

    return Settings


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (0.0.0.0: every interface; there are no accounts).",
)
@click.option(
    "--port",
    default=7860,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port (0: a free one, printed).",
)
@with_options(
    click_options(_settings(), exclude=("default_seed",)),
    click_options(ModelOptions),
    click_options(RunOptions, exclude=("overwrite",)),
)
def serve(host, port, **params):
    """Serve a web page and an HTTP API (POST /api/decompose) for decomposition.

    --seed fixes the seed of requests that give none; -q turns the access log off.
    """
    missing = missing_extra()
    if missing:
        raise click.ClickException(
            f"serve needs the web extra (missing: {', '.join(missing)}): "
            "pip install 'layerdecomp[serve]'"
        )
    from ..serve import Settings, address, create_app, listen, run_server

    sock = listen(host, port)
    try:
        started = time.perf_counter()
        model, run = take(ModelOptions, params), take(RunOptions, params)
        backend = load_backend(model, run.quiet)
        settings = dataclasses.replace(take(Settings, params), default_seed=run.seed)
        app = create_app(backend, settings=settings, metadata=model.record())
        click.echo(
            f"serving {address(sock)} (model {model.model}, loaded in "
            f"{time.perf_counter() - started:.1f}s; Ctrl+C stops)",
            err=True,
        )
        try:
            run_server(app, sock, quiet=run.quiet)
        except KeyboardInterrupt:  # uvicorn shuts down gracefully, then re-raises Ctrl+C
            pass
        click.echo("stopped", err=True)
    finally:
        sock.close()
