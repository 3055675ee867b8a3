"""``layerdecomp constrain NAME IMAGE``: sample under any registered constraint built from IMAGE.

Built-ins and plugins alike (``layerdecomp constraints`` lists them); ``--arg KEY=VALUE`` gives the
constraint's own arguments (``--arg mask=holes.png`` for ``mask``), values read as TOML literals
(``4``, ``0.5``, ``true``) or else as text.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from ..tasks.constraint import ConstraintConfig
from .options import (
    config_from,
    config_options,
    finish,
    literal,
    load_backend,
    model_options,
    output_option,
)


class KeyValue(click.ParamType):
    """``KEY=VALUE`` → ``(key, value)`` (``run`` invokes the command with the pairs directly)."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        key, sep, raw = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r}: expected KEY=VALUE", param, ctx)
        return key.strip(), literal(raw)


@click.command()
@click.argument("name")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@output_option("Output image (PNG), the input's size; OUTPUT with .json receives the metadata.")
@click.option(
    "--arg",
    "arguments",
    multiple=True,
    type=KeyValue(),
    help="A keyword argument of the constraint (repeatable).",
)
@config_options(ConstraintConfig)
@model_options
def constrain(name, image, output, arguments, **params):
    """Sample under the constraint NAME built from IMAGE; write OUTPUT and OUTPUT.json."""
    from ..io import check_output_path, open_image, to_rgb
    from ..tasks.constraint import one_image_constraint, run_constraint

    started = time.perf_counter()
    config = config_from(ConstraintConfig, params)
    one_image_constraint(name)
    output = check_output_path(output)
    source = open_image(image, "image")
    rgb = to_rgb(source)
    backend = load_backend(params)
    loaded = time.perf_counter()
    result = run_constraint(
        backend,
        name,
        rgb,
        arguments=dict(arguments),
        config=config,
        seed=params["seed"],
        disable_progress=True if params["quiet"] else None,
    )
    extra = {"task": name, "image": str(image), "image_mode": source.mode, "size": list(rgb.size)}
    finish("constrain", result, backend, output, started, loaded, extra, params)
