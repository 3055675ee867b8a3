"""Command line: ``python -m layerdecomp.judge --out DIR [--minutes M] [--n N]``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import LayerdecompError
from .card import judge_card
from .train import JudgeRecipe, train_judge


@click.command()
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=7.0,
    show_default=True,
    help="Wall-clock budget of the optimisation (rendering the data comes on top).",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=12000,
    show_default=True,
    help="Training composites (train split).",
)
@click.option(
    "--steps", type=click.IntRange(min=1), default=None, help="Stop after this many steps."
)
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True)
@click.option(
    "--eval-n",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Held-out composites measured at the end.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Torch threads (the default suits a shared machine).",
)
def main(
    out: str,
    minutes: float,
    n: int,
    steps: int | None,
    batch: int,
    eval_n: int,
    seed: int,
    threads: int,
) -> None:
    """Train the judge on ground-truth composites and save it (weights, config, card) to OUT."""
    folder = Path(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)  # before the minutes of training
    except OSError as exc:
        click.echo(f"error: --out {out!r}: cannot be created ({exc.strerror})", err=True)
        sys.exit(1)
    recipe = JudgeRecipe(
        n=n, minutes=minutes, steps=steps, batch=batch, seed=seed, eval_n=eval_n, threads=threads
    )
    judge, record = train_judge(recipe, log=lambda line: click.echo(line, err=True))
    options = {"out": out, "minutes": minutes, "n": n, "steps": steps, "batch": batch}
    options |= {"eval-n": eval_n, "seed": seed, "threads": threads}
    command = "python -m layerdecomp.judge " + " ".join(
        f"--{k} {v}" for k, v in options.items() if v is not None
    )
    try:
        judge.save(folder, card=judge_card(record, command))
    except LayerdecompError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    accuracy = record["heldout"]["accuracy"]
    click.echo(f"saved {folder}: held-out " + " ".join(f"{k}={v:.3f}" for k, v in accuracy.items()))


if __name__ == "__main__":
    main()
