"""``layerdecomp run RECIPE [KEY=VALUE ...]``: a recipe, checked against its task's declaration.

Every key of the recipe and every ``KEY=VALUE`` override is a name of the task's declaration
(:mod:`layerdecomp.tasks.catalog`): an input, an option of its config, a model or a run option,
``output``. The values go through :func:`layerdecomp.tasks.declare.request`, the same checks and
defaults as the command line and the server (an unknown name, an earlier name, a value of the
wrong type or out of range are refused in one line naming the key). A TOML value must have the
option's type (``steps = "5"`` is refused); an override's text is read as the option's type
(``steps=5``, ``quiet=true``, ``fg=a cat``). A repeatable input (``decompose``'s ``fg``) takes
a TOML list or one value, and repeated overrides add up: ``fg="a cat" fg="a dog"``.
A constraint's recipe runs the ``constrain`` task: its ``[constraint]`` table, keys the task
does not know and ``constraint.KEY=VALUE`` overrides become the constraint's own arguments.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .options import literal

_TRUE = {"true": True, "1": True, "yes": True, "on": True}
_FALSE = {"false": False, "0": False, "no": False, "off": False}


def _recipe_error(recipe, message: str):
    from ..recipes import RecipeError

    return RecipeError(f"recipe {recipe.name!r}: {message}")


def _kinds(task) -> dict[str, Any]:
    """Name → the declared kind of each option a text override may set."""
    from ..models.options import ModelOptions
    from ..options import option_fields
    from ..tasks.declare import RunOptions

    kinds = {}
    for cls in (task.config, task.settings, ModelOptions, RunOptions):
        if cls is not None:
            kinds.update({name: leaf.kind for name, leaf in option_fields(cls).items()})
    return kinds


def _from_text(kind: Any, raw: str) -> Any:
    """An override's text as the option's kind (``int``, ``float``, ``bool``); other kinds
    (text, schedules, choices) keep the text."""
    text = raw.strip()
    if kind is bool:
        word = text.lower()
        if word in _TRUE or word in _FALSE:
            return _TRUE.get(word, _FALSE.get(word))
        return raw
    if kind in (int, float):
        try:
            return kind(text) if kind is int or "." in text or "e" in text.lower() else int(text)
        except ValueError:
            try:
                return float(text) if kind is float else raw
            except ValueError:
                return raw
    return raw


def resolve(task, recipe, overrides) -> dict[str, Any]:
    """The flat values of the request: the recipe's, then the overrides'.

    Raises:
        RecipeError: a malformed override.
    """
    from ..options import renamed
    from ..recipes import split_overrides

    names = task.names()
    known = {*names, *renamed(task.config)}
    constraint = task.name == "constrain"
    kinds = _kinds(task)
    values: dict[str, Any] = {}
    arguments: dict[str, Any] = {}
    for key, value in recipe.values.items():
        if key == "constraint" and constraint and isinstance(value, dict):
            arguments.update(value)
        elif constraint and key not in known:
            arguments[key] = value
        else:
            values[key] = value
    repeated: set[str] = set()
    for key, raw in split_overrides(overrides, recipe.name):
        head, dot, rest = key.partition(".")
        if constraint and dot and head == "constraint" and rest:
            arguments[rest] = literal(raw)
        elif constraint and key not in known and not dot:
            arguments[key] = literal(raw)
        elif task.input(key) is not None and task.input(key).kind == "prompts":
            before = values.get(key, ()) if key in repeated else ()
            values[key] = (*before, raw)
            repeated.add(key)
        else:
            values[key] = _from_text(kinds.get(key), raw)
    if constraint:
        values["name"] = recipe.task
        values["arguments"] = tuple(arguments.items())
    return values


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("recipe")
@click.argument("overrides", nargs=-1)
@click.option("--dry-run", is_flag=True, help="Print the resolved parameters as JSON and stop.")
def run(recipe, overrides, dry_run):
    """Run RECIPE (a name in recipes/, a TOML file, or a constraint) with KEY=VALUE overrides.

    Example: layerdecomp run superres image=small.png output=large.png scale=8
    """
    from ..constraints import available
    from ..errors import InputError
    from ..recipes import TASKS, load_recipe
    from ..tasks.catalog import TASKS as DECLARED
    from ..tasks.declare import request
    from .execute import execute

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
    task = DECLARED[loaded.task if loaded.task in TASKS else "constrain"]
    values = resolve(task, loaded, overrides)
    try:
        checked = request(task, values)
    except InputError as exc:
        raise _recipe_error(loaded, str(exc)) from None
    if dry_run:
        printed = {"task": loaded.task, "parameters": checked.flat()}
        click.echo(json.dumps(printed, indent=2, default=str))
        return
    flat = checked.flat()
    given = [*loaded.values, *(item.partition("=")[0].strip() for item in overrides)]
    record = loaded.to_dict()
    record["values"] = {k: flat[k] for k in given if k in flat}
    record["overrides"] = list(overrides)
    execute(checked, record)
