"""Recipes: task presets as TOML data, loadable by name (``layerdecomp run NAME``).

A recipe names its ``task`` and sets that task's keys, flat::

    task = "superres"
    description = "×4 super-resolution, the authors' setting"
    scale = 4
    iterations = 10

The keys are the task command's parameters (``layerdecomp TASK --help``; their defaults are the
task's config dataclass in :mod:`layerdecomp.tasks`). ``task`` is ``inpaint``, ``superres``,
``style``, ``decompose``, or the name of a registered constraint, which runs through
``layerdecomp constrain`` (its own arguments go in a ``[constraint]`` table). This module finds
and parses recipes; ``layerdecomp run`` checks every key against the command, so an unknown key
or a value of the wrong type is one error naming the key and the recipe.

Recipes are looked up in the bundled folder (shipped inside the package), then in ``./recipes``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import InputError

TASKS = ("inpaint", "superres", "style", "decompose")
"""The tasks with a command of their own; any other task is a constraint name."""
RESERVED = ("task", "description")


class RecipeError(InputError):
    """A recipe that cannot be found or parsed, an unknown key, a wrong type, a missing value."""


def bundled_dir() -> Path:
    """The recipes shipped with the package (``recipes/`` of the source tree, in the wheel)."""
    return Path(str(files("layerdecomp._recipes")))


@dataclass(frozen=True)
class Recipe:
    """A task and the values a recipe sets for it (not yet checked against the task).

    Attributes:
        name: how it was asked for (a name, a path, or a constraint name).
        task: the task it runs.
        values: the keys it sets, as parsed from TOML.
        path: the TOML file, if any.
        description: its ``description``.
    """

    name: str
    task: str
    values: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for run metadata."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "task": self.task,
            "description": self.description,
            "values": self.values,
        }


def split_overrides(items: Iterable[str], recipe: str) -> list[tuple[str, str]]:
    """``KEY=VALUE`` strings → (key, raw text) pairs, in order."""
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RecipeError(f"recipe {recipe!r}: override {item!r}: expected KEY=VALUE")
        if key.strip() in RESERVED:
            raise RecipeError(f"recipe {recipe!r}: {key.strip()!r} cannot be overridden")
        pairs.append((key.strip(), value))
    return pairs


def from_mapping(data: dict[str, Any], name: str, path: Path | None = None) -> Recipe:
    """A recipe from parsed TOML: ``task``, an optional ``description``, the task's keys."""
    task = data.get("task")
    if not isinstance(task, str) or not task:
        raise RecipeError(
            f"recipe {name!r}: 'task' must name a task ({', '.join(TASKS)}) or a constraint"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"recipe {name!r}: key 'description' expects a string")
    values = {k: v for k, v in data.items() if k not in RESERVED}
    return Recipe(name=name, task=task, values=values, path=path, description=description)


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up by name: the bundled folder, then ``./recipes``."""
    found: list[Path] = []
    for folder in (bundled_dir(), Path.cwd() / "recipes"):
        if folder.is_dir() and all(folder.resolve() != f.resolve() for f in found):
            found.append(folder)
    return found


def list_recipes() -> dict[str, Path]:
    """The recipes available by name (the bundled ones win over ``./recipes``)."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def load_recipe(spec: str | Path, constraints: Iterable[str] = ()) -> Recipe:
    """Load a recipe by name (``recipes/NAME.toml``), by path, or by constraint name.

    Args:
        spec: the name, path or constraint name.
        constraints: the registered constraint names; one of them without a recipe file gives
            a recipe of that constraint with the command's defaults.

    Raises:
        RecipeError: not found or invalid TOML.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if text.endswith(".toml") or "/" in text or path.is_file():
        if not path.is_file():
            raise RecipeError(f"recipe {text!r}: no such file")
        name = text
    else:
        known = list_recipes()
        if text in known:
            path, name = known[text], text
        elif text in set(constraints):
            return Recipe(name=text, task=text)
        else:
            raise RecipeError(
                f"recipe {text!r}: not a recipe (known: {', '.join(known)}), not a TOML file and "
                "not a registered constraint"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {name!r}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {name!r}: cannot be read ({exc})") from None
    return from_mapping(data, name, path)


__all__ = [
    "TASKS",
    "Recipe",
    "RecipeError",
    "bundled_dir",
    "from_mapping",
    "list_recipes",
    "load_recipe",
    "recipe_dirs",
    "split_overrides",
]
