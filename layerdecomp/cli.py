"""The ``layerdecomp`` command line: thin click commands that parse, validate, call the API, write.

Every user error is printed as one line, ``error: <message>``, on stderr, with no traceback and no
output file: exit code 2 for usage and model-spec errors, 1 for bad input. Set
``LAYERDECOMP_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import click

from .errors import LayerdecompError


def _fail(message: str, code: int) -> int:
    first = " ".join(str(message).split()) or "failed"
    click.echo(f"error: {first}", err=True)
    return code


class _Group(click.Group):
    """A click group that reports every error on one line (click's own included)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            with warnings.catch_warnings():
                if not os.environ.get("LAYERDECOMP_DEBUG"):  # library warnings would break
                    warnings.simplefilter("ignore")  # the one-line error contract
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.UsageError as exc:
            code = _fail(f"{exc.format_message()} (try --help)", exc.exit_code)
        except click.ClickException as exc:
            code = _fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Abort:
            code = _fail("aborted", 1)
        except LayerdecompError as exc:
            code = _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130)
        except Exception as exc:
            if os.environ.get("LAYERDECOMP_DEBUG"):
                raise
            code = _fail(f"{type(exc).__name__}: {exc} (set LAYERDECOMP_DEBUG=1 for details)", 1)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layerdecomp")
def main() -> None:
    """Constrained sampling in pre-trained diffusion models with inexact-Newton steps."""


def _versions() -> dict[str, str]:
    out = {}
    for name in ("layerdecomp", "torch", "diffusers", "transformers"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def _quiet_libraries() -> None:
    """Keep diffusers/transformers to errors: the progress bar and one-line errors stay readable."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def model_options(function):
    """The options that choose and place the model, shared by every command that loads one."""
    options = [
        click.option(
            "--model",
            default="mini",
            show_default=True,
            help="Hub id, diffusers folder, .safetensors checkpoint, or 'mini'.",
        ),
        click.option(
            "--model-config",
            type=click.Path(path_type=Path),
            default=None,
            help="Diffusers folder with the config of a single-file checkpoint (offline).",
        ),
        click.option(
            "--allow-pickle", is_flag=True, help="Accept .ckpt/.bin/.pt weights (unsafe)."
        ),
        click.option(
            "--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N, mps."
        ),
        click.option(
            "--dtype",
            default="auto",
            show_default=True,
            type=click.Choice(["auto", "float16", "bfloat16", "float32"]),
            help="Network precision (auto: float16 on GPU, float32 on CPU).",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def load_backend(model, model_config, allow_pickle, device, dtype):
    """Quiet the libraries and load ``model`` (:func:`layerdecomp.models.load_model`)."""
    _quiet_libraries()
    from .models import load_model

    return load_model(
        model, device=device, dtype=dtype, config=model_config, allow_pickle=allow_pickle
    )


@main.command()
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--mask",
    "mask_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Mask image, same size: white = region to fill, black = keep.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output image (PNG); OUTPUT with .json receives the run's metadata.",
)
@click.option("--prompt", default="", show_default=True, help="Text prompt.")
@click.option("--negative-prompt", default="", help="Negative prompt (with --guidance > 0).")
@click.option(
    "--guidance",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0.0),
    help="CFG weight w: (1+w)·ε_c − w·ε_u; 0 = no guidance.",
)
@model_options
@click.option(
    "--steps", default=20, show_default=True, type=click.IntRange(min=1), help="Sampling steps."
)
@click.option(
    "--iters",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="Newton (or gradient) iterations per step.",
)
@click.option(
    "--direction",
    default="newton",
    show_default=True,
    type=click.Choice(["newton", "gradient"]),
    help="Iteration direction.",
)
@click.option("--seed", type=int, default=None, help="Random seed (default: drawn, recorded).")
@click.option(
    "--restarts", default=0, show_default=True, type=click.IntRange(min=0), help="Warm restarts."
)
@click.option(
    "--paste-back/--no-paste-back",
    default=True,
    show_default=True,
    help="Keep the unmasked pixels exactly (or show the raw decode).",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress bar.")
def inpaint(
    image,
    mask_path,
    output,
    prompt,
    negative_prompt,
    guidance,
    model,
    model_config,
    allow_pickle,
    steps,
    iters,
    direction,
    seed,
    restarts,
    device,
    dtype,
    paste_back,
    quiet,
):
    """Fill the white region of MASK in IMAGE; write OUTPUT and OUTPUT.json."""
    from .io import check_output_path, load_mask, open_image, to_rgb, write_outputs

    started = time.perf_counter()
    output = check_output_path(output)
    source = open_image(image, "image")
    rgb = to_rgb(source)
    mask = load_mask(mask_path, rgb.size)

    from .inpaint import inpaint as run_inpaint

    backend = load_backend(model, model_config, allow_pickle, device, dtype)
    loaded = time.perf_counter()
    result = run_inpaint(
        backend,
        rgb,
        mask,
        prompt=prompt,
        negative_prompt=negative_prompt,
        guidance=guidance,
        steps=steps,
        iterations=iters,
        direction=direction,
        seed=seed,
        restarts=restarts,
        paste_back=paste_back,
        disable_progress=True if quiet else None,
    )
    metadata = {
        "command": "inpaint",
        "image": str(image),
        "mask": str(mask_path),
        "output": str(output),
        "image_mode": source.mode,
        "model": backend.describe(),
        "device": str(backend.device),
        "dtype": str(backend.dtype).removeprefix("torch."),
        "mask_fill_fraction": round(sum(mask.histogram()[128:]) / (mask.width * mask.height), 6),
        **result.metadata(),
        "versions": _versions(),
    }
    metadata["parameters"] = {
        **metadata["parameters"],
        "model": model,
        "model_config": str(model_config) if model_config else None,
        "allow_pickle": allow_pickle,
        "device": device,
        "dtype": dtype,
        "quiet": quiet,
    }
    metadata["timings"] = {
        "load": round(loaded - started, 4),
        **metadata["timings"],
        "total": round(time.perf_counter() - started, 4),
    }
    write_outputs(result.image, output, metadata)
    if not quiet:
        click.echo(
            f"wrote {output} ({result.size[0]}x{result.size[1]}, nfe={result.nfe}, "
            f"{metadata['timings']['total']:.1f}s)",
            err=True,
        )


# The other commands register themselves on `main`.
from . import cli_decompose, cli_run, cli_tasks  # noqa: E402,F401

__all__ = ["main"]

if __name__ == "__main__":
    main()
