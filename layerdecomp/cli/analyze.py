"""``layerdecomp analyze``: measurements of a model; ``analyze jacobian`` its Jacobian's spectrum.

``analyze jacobian`` writes into DIR the table (``spectrum.csv``, ``spectrum.md``), the two
figures (``jacobian_spectrum.png``, ``jacobian_column_row.png``) and ``run.json`` (parameters,
the model, the rows, versions, timings), all at once at the end: an error leaves nothing. The
figures need matplotlib (the ``analyze`` extra). Networks run in float32 unless ``--dtype`` says
otherwise: the finite differences move x_t by δ0 = 1e-3, below what float16 resolves.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import time
from pathlib import Path

import click
import torch

from ..errors import InputError
from ..models.options import ModelOptions
from ..runs.fingerprint import versions
from ..tasks.declare import RunOptions
from .options import click_options, load_backend, take, with_options

FILES = (
    "spectrum.csv",
    "spectrum.md",
    "jacobian_spectrum.png",
    "jacobian_column_row.png",
    "run.json",
)
"""What ``analyze jacobian`` writes into DIR (``run.json``, renamed into place last, marks a
complete run)."""

MISSING_MATPLOTLIB = "layerdecomp analyze needs matplotlib: pip install 'layerdecomp[analyze]'"


class MissingExtra(click.ClickException):
    """An optional dependency is not installed (exit 2, like a usage error)."""

    exit_code = 2


def require_matplotlib() -> str:
    """matplotlib's version, or :class:`MissingExtra` with the line that says how to get it."""
    try:
        import matplotlib
    except ImportError:
        raise MissingExtra(MISSING_MATPLOTLIB) from None
    return str(matplotlib.__version__)


@click.group()
def analyze() -> None:
    """Measure a model (the plots need the 'analyze' extra)."""


@analyze.command()
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder: spectrum.csv, spectrum.md, the two plots, run.json.",
)
@click.option(
    "--t",
    "timesteps",
    type=int,
    multiple=True,
    help="Timestep, repeatable (default: 900 700 500 300, scaled to the model's schedule).",
)
@click.option(
    "--krylov",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Krylov size (denoiser products) per operator.",
)
@click.option(
    "--probes",
    default=16,
    show_default=True,
    type=click.IntRange(min=2),
    help="Hutchinson probes for the asymmetry.",
)
@click.option("--prompt", default="", help="Text prompt of the denoiser (default: none).")
@click.option("--negative-prompt", default="", help="Unconditional prompt (with --guidance).")
@click.option(
    "--guidance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="CFG weight w: the Jacobian of the guided denoiser.",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="x_t around this image, encoded by the model (default: a seeded random latent).",
)
@click.option(
    "--size",
    type=click.IntRange(min=1),
    default=None,
    help="Longer side in pixels of the work image (default: the model's native size).",
)
@click.option(
    "--cell-t",
    type=int,
    default=None,
    help="Timestep of the column/row picture (default: 500, scaled to the schedule).",
)
@click.option(
    "--delta0",
    default=1e-3,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Finite-difference step of J·v, in max-norm.",
)
@click.option(
    "--exact", is_flag=True, help="Also the dense J by autograd (latents of ≤ 4096 entries)."
)
@with_options(
    click_options(
        ModelOptions, {"dtype": "Network precision (auto: float32, on a GPU too; see above)."}
    ),
    click_options(RunOptions, exclude=("overwrite",)),
)
def jacobian(
    output,
    timesteps,
    krylov,
    probes,
    prompt,
    negative_prompt,
    guidance,
    image,
    size,
    cell_t,
    delta0,
    exact,
    **params,
):
    """Spectrum and asymmetry of the denoiser Jacobian J = ∂x̂0/∂x_t, and one column of J
    against one row, at each timestep; write the table and the plots into OUTPUT.

    --dtype auto means float32 here, on a GPU too: J·v is a finite difference of δ0 = 1e-3.
    """
    started = time.perf_counter()
    matplotlib_version = require_matplotlib()
    from ..io import check_output_folder, open_image, to_rgb

    output = check_output_folder(output)  # before the model loads

    source = to_rgb(open_image(image, "image")) if image is not None else None
    model, run = take(ModelOptions, params), take(RunOptions, params)
    seed = secrets.randbits(32) if run.seed is None else run.seed
    if model.dtype == "auto":
        model = dataclasses.replace(model, dtype="float32")
    from .. import analysis

    backend = load_backend(model, run.quiet)
    loaded = time.perf_counter()
    denoiser = backend.denoiser(prompt, negative_prompt, guidance)
    scheduler = denoiser.scheduler
    chosen = analysis.check_timesteps(timesteps or analysis.default_timesteps(scheduler), scheduler)
    cell_t = analysis.check_timesteps(
        [cell_t] if cell_t is not None else analysis.default_timesteps(scheduler, (500,)),
        scheduler,
    )[0]
    if backend.dtype != torch.float32 and not run.quiet:
        click.echo(
            f"note: the network runs in {str(backend.dtype).removeprefix('torch.')}: finite "
            f"differences of δ0 = {delta0:g} are coarse there (--dtype float32 is the default)",
            err=True,
        )
    latent = analysis.clean_latent(backend, source, size, seed)
    if exact and latent.numel() > analysis.MAX_EXACT:
        raise InputError(
            f"--exact: the latent {tuple(latent.shape)} has {latent.numel()} entries, at most "
            f"{analysis.MAX_EXACT}; pass a smaller --size"
        )
    quiet = run.quiet
    rows = []
    for t in chosen:
        row = analysis.spectrum_row(
            denoiser, latent, t, krylov=krylov, probes=probes, seed=seed, exact=exact, delta0=delta0
        )
        rows.append(row)
        if not quiet:
            click.echo(
                f"t={t}: |λ|max J {row.top['jacobian']:.3f}, sym {row.top['symmetric']:.3f}, "
                f"skew {row.top['skew']:.3f}, asymmetry {row.asymmetry:.3f} ± "
                f"{row.asymmetry_stderr:.3f} ({row.nfe} fwd, {row.backward} bwd, "
                f"{row.seconds:.1f}s)",
                err=True,
            )
    measured = time.perf_counter()
    pair = analysis.column_and_row(denoiser, latent, cell_t, seed=seed, delta0=delta0)
    spec = model.model
    label = Path(spec).name if Path(spec).exists() else spec  # a folder or file: its name
    length = analysis.schedule_length(scheduler)
    spectrum_plot = analysis.spectrum_figure(rows, label, length)
    column_plot = analysis.column_row_figure(pair, label)
    drawn = time.perf_counter()
    metadata = {
        "command": "analyze jacobian",
        "output": str(output),
        "parameters": {
            "timesteps": chosen,
            "cell_t": cell_t,
            "krylov": krylov,
            "probes": probes,
            "delta0": delta0,
            "central_differences": True,
            "exact": exact,
            "image": None if image is None else str(image),
            "size": size,
            "prompt": prompt,
            "negative_prompt": negative_prompt,
            "guidance": guidance,
            "seed": seed,
            **model.record(),
            "quiet": quiet,
        },
        "model": backend.describe(),
        "schedule": {
            "num_train_timesteps": length,
            "valid_timesteps": list(analysis.timestep_range(scheduler)),
            "prediction_type": denoiser.prediction_type,
        },
        "latent": {
            "source": "image" if source is not None else "random",
            "shape": list(latent.shape),
            "work_size": list(
                analysis.work_size(backend, None if source is None else source.size, size)
            ),
        },
        "rows": [r.record() for r in rows],
        "column_row": pair.record(),
        "nfe": sum(r.nfe for r in rows) + pair.nfe,
        "backward": sum(r.backward for r in rows) + pair.backward,
        "files": list(FILES),
        "timings": {
            "load": round(loaded - started, 4),
            "spectrum": round(measured - loaded, 4),
            "column_row_and_plots": round(drawn - measured, 4),
        },
        "versions": {**versions(), "matplotlib": matplotlib_version},
    }
    write_results(output, rows, length, spectrum_plot, column_plot, metadata, started)
    if not quiet:
        click.echo(
            f"wrote {output} ({len(rows)} timesteps, {metadata['timings']['total']:.1f}s)",
            err=True,
        )


def non_finite(value, where: str = "") -> str | None:
    """The path of the first NaN or Inf in a JSON-like value (``rows[2].asymmetry``), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "value"
    items = value.items() if isinstance(value, dict) else None
    if items is None and isinstance(value, list | tuple):
        items = ((f"[{i}]", v) for i, v in enumerate(value))
    for key, item in items or ():
        name = key if str(key).startswith("[") else f".{key}"
        found = non_finite(item, f"{where}{name}".lstrip("."))
        if found:
            return found
    return None


def write_results(output, rows, length, spectrum_plot, column_plot, metadata, started) -> None:
    """Every file of DIR in one :func:`~layerdecomp.io.write_atomically` (``run.json`` last).

    Raises:
        InputError: a NaN or Inf among the numbers (nothing is written).
    """
    from .. import analysis
    from ..io import write_atomically

    bad = non_finite(metadata)
    if bad:
        raise InputError(
            f"the measurement gave NaN or Inf ({bad}); nothing was written (a float16 overflow? "
            "try --dtype float32)"
        )

    title = f"Jacobian spectrum of {metadata['parameters']['model']}"
    csv_text = analysis.to_csv(rows, length)
    markdown = analysis.to_markdown(rows, length, title)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"output {str(output)!r}: cannot be created ({exc})") from None
    metadata["timings"]["total"] = round(time.perf_counter() - started, 4)
    text = json.dumps(metadata, indent=2, default=str) + "\n"
    write_atomically(
        [
            (output / "spectrum.csv", lambda p: p.write_text(csv_text, encoding="utf-8")),
            (output / "spectrum.md", lambda p: p.write_text(markdown, encoding="utf-8")),
            (output / "jacobian_spectrum.png", analysis.png_writer(spectrum_plot)),
            (output / "jacobian_column_row.png", analysis.png_writer(column_plot)),
            (output / "run.json", lambda p: p.write_text(text, encoding="utf-8")),
        ]
    )
