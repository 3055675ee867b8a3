"""The ``layerdecomp`` command line: one click group, one module per command.

Every user error is printed as one line, ``error: <message>``, on stderr, with no traceback and no
output file: exit code 2 for usage and model-spec errors, 1 for bad input (NaN or Inf in a run
included). Warnings of this package (a plugin that failed to load, say) are printed as one
``warning: …`` line each; the libraries' own warnings are silenced. Set ``LAYERDECOMP_DEBUG=1``
to see every warning and the traceback of an unexpected error.

The task commands (decompose, inpaint, superres, style, constrain) are generated from the
tasks' declarations (:mod:`.tasks`); the other commands live in their own modules and import only
:mod:`.options`, never each other. Ctrl+C exits 130.
"""

from __future__ import annotations

import os
import sys
import warnings

import click

from ..errors import LayerdecompError
from . import analyze, constraints, run, serve
from .tasks import task_commands


def _fail(message: str, code: int) -> int:
    first = _with_flags(" ".join(str(message).split()) or "failed")
    click.echo(f"error: {first}", err=True)
    return code


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(f"warning: {' '.join(str(message).split())}", err=True)


def _is_non_finite(exc: BaseException) -> bool:
    from solvers import NonFiniteError

    return isinstance(exc, NonFiniteError)


def _in_words(exc: BaseException) -> str:
    """An unexpected error for a person: an operating-system error as its reason and the path
    (``cannot write '/x': permission denied``), any other as its message, no class names."""
    if isinstance(exc, OSError) and exc.strerror:
        from ..io import os_reason

        where = f"{str(exc.filename)!r}: " if exc.filename else ""
        return f"{where}{os_reason(exc)}"
    return str(exc) or f"an unexpected error ({type(exc).__name__})"


def _with_flags(text: str) -> str:
    """A library's message with the option that helps named as the command line spells it (the
    libraries describe the problem; only the command line knows its flags)."""
    from solvers.errors import HALF_OVERFLOW

    return text.replace(HALF_OVERFLOW, f"{HALF_OVERFLOW} (--dtype float32)")


class _Group(click.Group):
    """A click group that reports every error on one line (click's own included)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        debug = bool(os.environ.get("LAYERDECOMP_DEBUG"))
        try:
            with warnings.catch_warnings():
                if not debug:
                    warnings.simplefilter("ignore")
                    warnings.filterwarnings("default", module=r"layerdecomp(\..*)?$")
                    warnings.showwarning = _show_warning
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = code if isinstance(code, int) else 0
        except click.exceptions.Exit as exc:
            code = exc.exit_code
        except click.UsageError as exc:
            code = _fail(f"{exc.format_message()} (try --help)", exc.exit_code)
        except click.ClickException as exc:
            code = _fail(exc.format_message(), exc.exit_code)
        except click.exceptions.Abort as exc:
            interrupted = isinstance(exc.__context__, KeyboardInterrupt)
            code = _fail("interrupted", 130) if interrupted else _fail("aborted", 1)
        except LayerdecompError as exc:
            code = _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130)
        except Exception as exc:
            if debug:
                raise
            if _is_non_finite(exc):
                code = _fail(f"{exc}; nothing was written", 1)
            else:
                code = _fail(f"{_in_words(exc)} (set LAYERDECOMP_DEBUG=1 for details)", 1)
        if standalone_mode:
            sys.exit(code)
        return code


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="layerdecomp")
def main() -> None:
    """Constrained sampling in pre-trained diffusion models with inexact-Newton steps."""


for _command in task_commands():
    main.add_command(_command)
for _module in (run, constraints, serve, analyze):
    main.add_command(getattr(_module, _module.__name__.rsplit(".", 1)[1]))

__all__ = ["main"]
