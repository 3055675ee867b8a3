"""The task commands (``decompose``, ``inpaint``, ``superres``, ``style``, ``constrain``),
generated from the tasks' declarations (:data:`layerdecomp.tasks.catalog.TASKS`).

Each command's arguments and options are the task's inputs, ``-o/--output``, its options tree,
its own settings, the model options and the run options, each with the help, default and
bounds of its one declaration; the command hands them to :func:`layerdecomp.tasks.declare.request`
and runs the request (:mod:`.execute`).
"""

from __future__ import annotations

from pathlib import Path

import click

from .options import RECIPE_META, click_options, flag, literal


class KeyValue(click.ParamType):
    """``KEY=VALUE`` → ``(key, value)``, the value read as a TOML literal, else as text."""

    name = "KEY=VALUE"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        key, sep, raw = str(value).partition("=")
        if not sep or not key.strip():
            self.fail(f"{value!r}: expected KEY=VALUE", param, ctx)
        return key.strip(), literal(raw)


def _input_param(spec) -> click.Parameter:
    """The click parameter of one input of a task."""
    if spec.positional:
        return click.Argument([spec.name], required=spec.required)
    if spec.kind == "prompts":
        return click.Option(
            [flag(spec.name)], multiple=True, required=spec.required, help=spec.help
        )
    if spec.kind == "arguments":
        return click.Option(["--arg", spec.name], multiple=True, type=KeyValue(), help=spec.help)
    kind = click.Path(path_type=Path) if spec.is_file else str
    return click.Option([flag(spec.name)], required=spec.required, type=kind, help=spec.help)


def task_command(task) -> click.Command:
    """The click command of ``task`` (a :class:`~layerdecomp.tasks.declare.Task`)."""
    from ..models.options import ModelOptions
    from ..tasks.declare import RunOptions

    params: list[click.Parameter] = [_input_param(spec) for spec in task.inputs]
    params.append(
        click.Option(
            ["-o", "--output"],
            required=True,
            type=click.Path(path_type=Path),
            help=task.output_help,
        )
    )
    params += click_options(task.config)
    if task.settings is not None:
        params += click_options(task.settings)
    params += click_options(ModelOptions)
    params += click_options(RunOptions)

    def callback(**values) -> None:
        from ..tasks.declare import request
        from .execute import execute

        given = {k: v for k, v in values.items() if v is not None and v != ()}
        recipe = click.get_current_context().meta.get(RECIPE_META)
        execute(request(task, given), recipe)

    return click.Command(
        task.name,
        params=params,
        callback=callback,
        help=task.help,
        short_help=task.help.split("\n")[0].split(";")[0],
    )


def task_commands() -> list[click.Command]:
    from ..tasks.catalog import TASKS

    return [task_command(task) for task in TASKS.values()]


__all__ = ["KeyValue", "task_command", "task_commands"]
