"""``layerdecomp run RECIPE [KEY=VALUE ...]``: a recipe, checked against its task's command.

Every key of the recipe and every ``KEY=VALUE`` override is a parameter of the task's command
(``layerdecomp TASK --help``), converted by that parameter's own click type, so a recipe, an
override and a command-line option go through the same checks and the same defaults (the task's
config dataclass). A TOML value must also have the parameter's type (``steps = "5"`` is refused).
A repeatable option (``decompose``'s ``fg``) takes a TOML list or one value, and repeated
overrides add up: ``fg="a cat" fg="a dog"``.
A constraint's recipe runs ``layerdecomp constrain``: its ``[constraint]`` table, keys the command
does not know and ``constraint.KEY=VALUE`` overrides become the constraint's own arguments.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .options import RECIPE_META, ScheduleType, literal

_PYTHON_TYPES = {
    click.types.IntParamType: (int,),
    click.types.FloatParamType: (int, float),
    click.types.BoolParamType: (bool,),
    ScheduleType: (int, float, str),
    click.types.UnprocessedParamType: (object,),  # a replaced option: refused by the command
}


def _recipe_error(recipe, message: str):
    from ..recipes import RecipeError

    return RecipeError(f"recipe {recipe.name!r}: {message}")


def _check_type(recipe, param: click.Parameter, value: Any) -> None:
    """A TOML value must be of the parameter's kind: a number for a number, text for text."""
    kind = type(param.type)
    expected = next((t for c, t in _PYTHON_TYPES.items() if issubclass(kind, c)), (str,))
    if isinstance(value, bool) and bool not in expected:
        ok = False
    else:
        ok = isinstance(value, expected) or (value is None and not param.required)
    if not ok:
        names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
        raise _recipe_error(
            recipe,
            f"key {param.name!r} expects {names[expected[-1]]}, got {type(value).__name__} "
            f"{value!r}",
        )


def resolve(ctx: click.Context, command: click.Command, recipe, overrides) -> dict[str, Any]:
    """The command's parameter values: its defaults, then the recipe's, then the overrides.

    Raises:
        RecipeError: an unknown key, a value of the wrong type or out of range, a missing key.
    """
    from ..recipes import split_overrides

    params = {p.name: p for p in command.params if p.name not in ("arguments", "name")}
    constraint = command.name == "constrain"
    arguments: dict[str, Any] = {}
    values: dict[str, Any] = {}
    sub = click.Context(command, parent=ctx, info_name=command.name)

    def convert(param: click.Parameter, value: Any) -> Any:
        if param.multiple and not isinstance(value, (list, tuple)):
            value = [value]  # a repeatable option given once
        try:
            return param.type_cast_value(sub, value)
        except click.BadParameter as exc:
            raise _recipe_error(recipe, f"key {param.name!r}: {exc.message}") from None

    repeated: set[str] = set()  # repeatable options given on the command line: they add up
    for key, value in recipe.values.items():
        if key == "constraint" and constraint and isinstance(value, dict):
            arguments.update(value)
        elif key in params and isinstance(params[key].type, click.types.UnprocessedParamType):
            raise _recipe_error(recipe, f"key {key!r} is gone: {params[key].help}")
        elif key in params:
            for item in value if params[key].multiple and isinstance(value, list) else [value]:
                _check_type(recipe, params[key], item)
            values[key] = None if value is None else convert(params[key], value)
        elif constraint:
            arguments[key] = value
        else:
            known = ", ".join(
                sorted(k for k, p in params.items() if not getattr(p, "hidden", False))
            )
            raise _recipe_error(recipe, f"unknown key {key!r} (known: {known})")
    for key, raw in split_overrides(overrides, recipe.name):
        head, dot, rest = key.partition(".")
        if constraint and dot and head == "constraint" and rest:
            arguments[rest] = literal(raw)
        elif key in params and params[key].multiple:
            before = values.get(key, ()) if key in repeated else ()
            values[key] = (*before, *convert(params[key], raw))
            repeated.add(key)
        elif key in params:
            values[key] = convert(params[key], raw)
        elif constraint and not dot:
            arguments[key] = literal(raw)
        else:
            known = ", ".join(
                sorted(k for k, p in params.items() if not getattr(p, "hidden", False))
            )
            raise _recipe_error(recipe, f"unknown key {key!r} (known: {known})")
    for name, param in params.items():
        if name in values:
            continue
        if param.required:
            hint = "PATH" if isinstance(param.type, click.Path) else "VALUE"
            raise _recipe_error(recipe, f"missing key {name!r} (give {name}={hint})")
        values[name] = param.get_default(sub)
    if constraint:
        values["name"] = recipe.task
        values["arguments"] = tuple(arguments.items())
    return values


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the resolved parameters as JSON and stop.")
@click.pass_context
def run(ctx, recipe, overrides, dry_run):
    """Run RECIPE (a name in recipes/, a TOML file, or a constraint) with KEY=VALUE overrides.

    Example: layerdecomp run superres image=small.png output=large.png scale=8
    """
    from ..constraints import available
    from ..recipes import TASKS, load_recipe

    names = list(available())
    loaded = load_recipe(recipe, names)
    if loaded.task not in TASKS and loaded.task not in names:
        raise _recipe_error(
            loaded,
            f"unknown task {loaded.task!r} (known: {', '.join(TASKS)}, or a constraint: "
            f"{', '.join(names)})",
        )
    if loaded.task not in TASKS:  # refused before the keys, with or without --dry-run
        from ..tasks.constraint import one_image_constraint

        one_image_constraint(loaded.task)
    group = ctx.parent.command
    command = group.get_command(ctx, loaded.task if loaded.task in TASKS else "constrain")
    values = resolve(ctx, command, loaded, overrides)
    if dry_run:
        click.echo(json.dumps({"task": loaded.task, "parameters": values}, indent=2, default=str))
        return
    given = {k for k in loaded.values} | {item.partition("=")[0].strip() for item in overrides}
    record = loaded.to_dict()
    record["values"] = {k: values[k] for k in values if k in given}
    record["overrides"] = list(overrides)
    ctx.meta[RECIPE_META] = record
    ctx.invoke(command, **values)
