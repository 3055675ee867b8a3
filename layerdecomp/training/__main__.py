"""Command line: ``python -m layerdecomp.training --config CONFIG.toml --out DIR``."""

from __future__ import annotations

import sys

import click

from layerdecomp.models.compiled import COMPILE_MODES
from layerdecomp.training.config import load_config
from layerdecomp.training.progress import Budget
from layerdecomp.training.train import train

compile_option = click.option(
    "--compile",
    "compile_mode",
    type=click.Choice(COMPILE_MODES),
    default=None,
    help="Override the config's torch.compile mode of both loops' step (reduce-overhead: CUDA "
    "graphs on a GPU; none: eager).",
)
"""``--compile`` of the training command and of ``benchmarks/train_step.py``."""


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
@click.option(
    "--max-minutes",
    type=click.FloatRange(min=0),
    default=0.0,
    help="Stop cleanly after this many minutes, saving OUT/checkpoint; run the same command "
    "again to continue (0: no limit).",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0),
    default=None,
    help="One run: render, train both models and report within this many minutes, the VAE "
    "and UNet schedules annealing on the time they get (overrides the config's `minutes`).",
)
@compile_option
def main(
    config_path: str,
    out: str,
    device: str | None,
    seed: int | None,
    max_minutes: float,
    minutes: float | None,
    compile_mode: str | None,
) -> None:
    """Train the miniature SD-format model on emoji composites and save it to OUT.

    A run continues from OUT's checkpoint when there is one.
    """
    given = (("device", device), ("seed", seed), ("minutes", minutes), ("compile", compile_mode))
    overrides = {k: v for k, v in given if v is not None}
    try:
        config = load_config(config_path, **overrides)
        result = train(
            config,
            out,
            log=lambda line: click.echo(line, err=True),
            command="python -m layerdecomp.training " + " ".join(sys.argv[1:]),
            budget=Budget(max_minutes=max_minutes),
        )
    except (ValueError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from None
    if result is None:
        click.echo(f"stopped after {max_minutes:g} min; run the same command to continue")
    else:
        click.echo(f"finished: {out}")


if __name__ == "__main__":
    main()
