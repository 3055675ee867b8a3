"""Recipes: declarative TOML presets, one per task, loadable by name (``layerdecomp run``).

A recipe names its ``task`` and sets that task's parameters, flat::

    task = "superres"
    description = "×4 super-resolution, the authors' setting"
    scale = 4
    iterations = 10

``task`` is ``inpaint``, ``superres``, ``style``, ``decompose``, or the name of any registered
constraint (built-in or a plugin), which runs through the generic constraint task: the input image
becomes the constraint (``Constraint.from_image`` or ``cls(image=..., codec=...)``) with the
arguments of the recipe's ``[constraint]`` table. Every task has a schema (:data:`TASKS`): keys
outside it, or values of the wrong type, are refused with one line naming the key. ``KEY=VALUE``
overrides (``constraint.NAME=VALUE`` for the table) are type-checked against the same schema.
Recipes are looked up in the repository's ``recipes/`` folder, then in ``./recipes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import InputError

RECIPE_DIR = Path(__file__).resolve().parents[1] / "recipes"
"""The bundled recipes (``recipes/`` at the repository root)."""

RESERVED = ("task", "description")
REQUIRED: Any = type("Required", (), {"__repr__": lambda self: "<required>"})()
_KIND_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "path": "a path (string)",
    "bool": "true or false",
    "schedule": "'linear', 'constant', 'dynamic', a number or a list of numbers",
    "table": "a table of constraint arguments",
}
_SCHEDULES = ("linear", "constant", "dynamic")


class RecipeError(InputError):
    """A recipe that cannot be found or parsed, an unknown key, a wrong type, a missing value."""


@dataclass(frozen=True)
class Param:
    """One recipe key: its kind, default (``REQUIRED`` if none), allowed values and minimum."""

    kind: str
    default: Any = REQUIRED
    choices: tuple = ()
    minimum: float | None = None
    help: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


def _model_params() -> dict[str, Param]:
    return {
        "model": Param("str", "mini", help="hub id, diffusers folder, .safetensors, or mini"),
        "model_config": Param("path", None, help="config folder of a single-file checkpoint"),
        "allow_pickle": Param("bool", False, help="accept .ckpt/.bin/.pt weights"),
        "seed": Param("int", None, help="random seed (default: drawn, recorded)"),
        "device": Param("str", "auto", help="auto, cpu, cuda, cuda:N, mps"),
        "dtype": Param("str", "auto", ("auto", "float16", "bfloat16", "float32")),
        "quiet": Param("bool", False, help="no progress bar"),
    }


def _sampling(steps: int, iterations: int, guidance: float) -> dict[str, Param]:
    return {
        "prompt": Param("str", ""),
        "negative_prompt": Param("str", ""),
        "guidance": Param("float", guidance, minimum=0.0, help="CFG weight w"),
        "steps": Param("int", steps, minimum=1),
        "iterations": Param("int", iterations, minimum=0, help="K iterations per step"),
        "direction": Param("str", "newton", ("newton", "gradient")),
        "restarts": Param("int", 0, minimum=0),
    }


TASKS: dict[str, dict[str, Param]] = {
    "inpaint": {
        "image": Param("path"),
        "mask": Param("path", help="white = fill, black = keep"),
        "output": Param("path"),
        **_sampling(20, 5, 0.0),
        "paste_back": Param("bool", True),
        **_model_params(),
    },
    "superres": {
        "image": Param("path", help="the low-resolution image"),
        "output": Param("path"),
        "scale": Param("int", 4, (2, 4, 8)),
        "method": Param("str", "backprop", ("backprop", "vae_newton")),
        **_sampling(20, 10, 0.0),
        "lam": Param("float", 0.1, minimum=0.0, help="constant λ"),
        "perturbation": Param("float", 0.0, minimum=0.0),
        **_model_params(),
    },
    "style": {
        "style": Param("path", help="the style reference image"),
        "output": Param("path"),
        **_sampling(20, 5, 2.0),
        "prompt": Param("str"),
        "lam_start": Param("float", 0.5, minimum=0.0),
        "lam_end": Param("float", 0.1, minimum=0.0),
        "clip": Param("str", "openai", help="open_clip tag, checkpoint file or folder"),
        "clip_model": Param("str", "ViT-B-16"),
        "block": Param("int", 2, minimum=0),
        "width": Param("int", 0, minimum=0, help="0 = the model's native size"),
        "height": Param("int", 0, minimum=0, help="0 = the model's native size"),
        **_model_params(),
    },
    "decompose": {
        "image": Param("str", help="a file, a folder or a glob"),
        "output": Param("path", help="output folder"),
        "fg": Param("str"),
        "bg": Param("str"),
        "iterations": Param("int", 12, minimum=1),
        "samples": Param("int", 5, minimum=1),
        "noise_level": Param("float", 0.35, minimum=0.0),
        "newton_iters": Param("int", 3, minimum=1),
        "guidance": Param("float", 0.0, minimum=0.0),
        "restarts": Param("int", 3, minimum=1),
        "negative_prompt": Param("str", ""),
        **_model_params(),
    },
}
"""The schema of each dedicated task."""

CONSTRAINT_TASK: dict[str, Param] = {
    "image": Param("path"),
    "output": Param("path"),
    **_sampling(20, 5, 0.0),
    "lam": Param("schedule", "linear"),
    "lam_start": Param("float", 0.5, minimum=0.0),
    "lam_end": Param("float", 0.1, minimum=0.0),
    "perturbation": Param("float", 0.0, minimum=0.0),
    "constraint": Param("table", {}, help="keyword arguments of the constraint"),
    **_model_params(),
}
"""The schema of the generic task that runs any registered constraint."""


def constraint_names() -> list[str]:
    from .constraints import available

    return list(available())


def schema_for(task: str) -> dict[str, Param]:
    """The schema of ``task``: a dedicated task's, or the generic constraint task's."""
    if task in TASKS:
        return TASKS[task]
    if task in constraint_names():
        return CONSTRAINT_TASK
    raise RecipeError(
        f"unknown task {task!r} (known: {', '.join(TASKS)}, or a constraint: "
        f"{', '.join(constraint_names())})"
    )


def _check(label: str, key: str, param: Param, value: Any) -> Any:
    """Validate a TOML (or parsed override) value against ``param``; return it normalised."""

    def fail(what: str = "") -> RecipeError:
        got = what or f"{type(value).__name__} {value!r}"
        return RecipeError(
            f"recipe {label!r}: key {key!r} expects {_KIND_NAMES[param.kind]}, got {got}"
        )

    kind = param.kind
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail()
        value = float(value)
        if not math.isfinite(value):
            raise fail(repr(value))
    elif kind in ("str", "path"):
        if not isinstance(value, str):
            raise fail()
    elif kind == "bool":
        if not isinstance(value, bool):
            raise fail()
    elif kind == "schedule":
        if isinstance(value, str):
            if value not in _SCHEDULES:
                raise fail(repr(value))
        elif isinstance(value, list):
            if not value or not all(
                isinstance(v, int | float) and not isinstance(v, bool) for v in value
            ):
                raise fail()
            value = [float(v) for v in value]
        elif isinstance(value, bool) or not isinstance(value, int | float):
            raise fail()
        else:
            value = float(value)
    elif kind == "table":
        if not isinstance(value, dict):
            raise fail()
        value = dict(value)
    if param.choices and value not in param.choices:
        raise RecipeError(
            f"recipe {label!r}: key {key!r} must be one of "
            f"{', '.join(str(c) for c in param.choices)}, got {value!r}"
        )
    if param.minimum is not None and isinstance(value, int | float) and value < param.minimum:
        raise RecipeError(f"recipe {label!r}: key {key!r} must be ≥ {param.minimum}, got {value}")
    return value


def _parse(label: str, key: str, param: Param, raw: str) -> Any:
    """Turn an override's text into a value of ``param``'s kind (then :func:`_check` it)."""
    kind = param.kind
    try:
        if kind == "int":
            value: Any = int(raw)
        elif kind == "float":
            value = float(raw)
        elif kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ValueError(raw)
            value = lowered in ("true", "1", "yes", "on")
        elif kind == "schedule":
            if raw in _SCHEDULES:
                value = raw
            elif "," in raw:
                value = [float(v) for v in raw.split(",")]
            else:
                value = float(raw)
        else:
            value = raw
    except ValueError:
        raise RecipeError(
            f"recipe {label!r}: key {key!r} expects {_KIND_NAMES[kind]}, got {raw!r}"
        ) from None
    return _check(label, key, param, value)


def _literal(raw: str) -> Any:
    """A TOML literal (``4``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), else the text itself."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


@dataclass(frozen=True)
class Recipe:
    """A task and its parameter values (validated against the task's schema).

    Attributes:
        name: how it was asked for (a name in ``recipes/``, a path, or a constraint name).
        task: the task it runs.
        values: the values it sets (schema defaults fill the rest, see :meth:`resolve`).
        path: the TOML file, if any.
        description: its ``description``.
    """

    name: str
    task: str
    values: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    description: str = ""

    @property
    def schema(self) -> dict[str, Param]:
        return schema_for(self.task)

    def _unknown(self, key: str) -> RecipeError:
        known = ", ".join(sorted(self.schema))
        return RecipeError(f"recipe {self.name!r}: unknown key {key!r} (known: {known})")

    def override(self, items: Iterable[str] | Mapping[str, Any]) -> Recipe:
        """A copy with ``KEY=VALUE`` strings (or a mapping of parsed values) applied."""
        values = {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.values.items()}
        pairs = items.items() if isinstance(items, Mapping) else map(_split, items)
        schema = self.schema
        for key, raw in pairs:
            if key in RESERVED:
                raise RecipeError(f"recipe {self.name!r}: {key!r} cannot be overridden")
            head, dot, sub = key.partition(".")
            param = schema.get(head)
            if param is None:
                raise self._unknown(head)
            if dot:
                if param.kind != "table" or not sub:
                    raise RecipeError(f"recipe {self.name!r}: key {key!r}: {head!r} is not a table")
                table = dict(values.get(head, param.default) or {})
                table[sub] = _literal(raw) if isinstance(raw, str) else raw
                values[head] = table
            elif isinstance(raw, str) and param.kind != "table":
                values[key] = _parse(self.name, key, param, raw)
            else:
                values[key] = _check(self.name, key, param, raw)
        return replace(self, values=values)

    def resolve(self) -> dict[str, Any]:
        """Every parameter of the task: schema defaults, then the recipe's values.

        Raises:
            RecipeError: a required key without a value.
        """
        out: dict[str, Any] = {}
        for key, param in self.schema.items():
            if key in self.values:
                out[key] = self.values[key]
            elif param.required:
                hint = "PATH" if param.kind == "path" else "VALUE"
                raise RecipeError(f"recipe {self.name!r}: missing key {key!r} (give {key}={hint})")
            else:
                default = param.default
                out[key] = dict(default) if isinstance(default, dict) else default
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record for run metadata."""
        return {
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "task": self.task,
            "description": self.description,
            "values": self.values,
        }


def _split(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"override {item!r}: expected KEY=VALUE")
    return key.strip(), value


def from_mapping(data: Mapping[str, Any], name: str, path: Path | None = None) -> Recipe:
    """Validate a parsed recipe (``task``, optional ``description``, the task's keys)."""
    task = data.get("task")
    if task is None:
        raise RecipeError(f"recipe {name!r}: missing 'task' (one of {', '.join(TASKS)})")
    if not isinstance(task, str):
        raise RecipeError(f"recipe {name!r}: key 'task' expects a string, got {task!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise RecipeError(f"recipe {name!r}: key 'description' expects a string")
    try:
        schema = schema_for(task)
    except RecipeError as exc:
        raise RecipeError(f"recipe {name!r}: {exc}") from None
    values = {}
    for key, value in data.items():
        if key in RESERVED:
            continue
        if key not in schema:
            known = ", ".join(sorted(schema))
            raise RecipeError(f"recipe {name!r}: unknown key {key!r} (known: {known})")
        values[key] = _check(name, key, schema[key], value)
    return Recipe(name=name, task=task, values=values, path=path, description=description)


def recipe_dirs() -> list[Path]:
    """Where recipes are looked up by name: the bundled folder, then ``./recipes``."""
    found: list[Path] = []
    for folder in (RECIPE_DIR, Path.cwd() / "recipes"):
        if folder.is_dir() and all(folder.resolve() != f.resolve() for f in found):
            found.append(folder)
    return found


def list_recipes() -> dict[str, Path]:
    """The recipes available by name."""
    found: dict[str, Path] = {}
    for folder in recipe_dirs():
        for path in sorted(folder.glob("*.toml")):
            found.setdefault(path.stem, path)
    return found


def load_recipe(spec: str | Path) -> Recipe:
    """Load a recipe by name (``recipes/NAME.toml``), by path, or by constraint name.

    A registered constraint's name without a recipe file gives the generic constraint task with
    its defaults.

    Raises:
        RecipeError: not found, invalid TOML, or invalid contents (naming the key).
    """
    text = str(spec)
    path = Path(text).expanduser()
    looks_like_path = text.endswith(".toml") or "/" in text or path.is_file()
    if looks_like_path:
        if not path.is_file():
            raise RecipeError(f"recipe {text!r}: no such file")
        name = text
    else:
        known = list_recipes()
        if text in known:
            path, name = known[text], text
        elif text in constraint_names():
            return Recipe(name=text, task=text)
        else:
            raise RecipeError(
                f"recipe {text!r}: not a recipe in recipes/ (known: {', '.join(known)}), not a "
                "TOML file and not a registered constraint"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"recipe {name!r}: invalid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"recipe {name!r}: cannot be read ({exc})") from None
    return from_mapping(data, name, path)


__all__ = [
    "CONSTRAINT_TASK",
    "RECIPE_DIR",
    "TASKS",
    "Param",
    "Recipe",
    "RecipeError",
    "from_mapping",
    "list_recipes",
    "load_recipe",
    "schema_for",
]
