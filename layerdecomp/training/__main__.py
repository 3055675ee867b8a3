"""Command line: ``python -m layerdecomp.training --config CONFIG.toml --out DIR``."""

from __future__ import annotations

import sys

import click

from layerdecomp.training.config import load_config
from layerdecomp.training.train import train


@click.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    help="A TOML config file, or a bundled config's name (cpu, gpu).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Output folder for the diffusers pipeline and the reports.",
)
@click.option("--device", default=None, help="Override the config's device (cpu, cuda).")
@click.option("--seed", type=int, default=None, help="Override the config's seed.")
def main(config_path: str, out: str, device: str | None, seed: int | None) -> None:
    """Train the miniature SD-format model on emoji composites and save it to OUT."""
    overrides = {k: v for k, v in (("device", device), ("seed", seed)) if v is not None}
    config = load_config(config_path, **overrides)
    train(
        config,
        out,
        log=lambda line: click.echo(line, err=True),
        command="python -m layerdecomp.training " + " ".join(sys.argv[1:]),
    )


if __name__ == "__main__":
    main()
