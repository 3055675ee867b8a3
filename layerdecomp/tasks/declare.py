"""A task as one declaration: its inputs, its options tree, its output and its one ``run()``.

Every front end is generated from a :class:`Task`: the command line (one click command per
task, :mod:`layerdecomp.cli.tasks`), the recipes (``layerdecomp run``), the fingerprint that
decides whether a rerun skips an output, and ``run.json``. A front end hands the task a flat
mapping of names to values (``{"image": "a.png", "steps": 10, "model": "mini"}``) and
:func:`request` sorts it into a checked :class:`Request`:

- the task's **inputs** (:class:`Input`: images, masks, prompts, a constraint's arguments);
- its **config**, the options tree (:func:`layerdecomp.options.configure`);
- the **model options** (:class:`~layerdecomp.models.options.ModelOptions`);
- the **run options** (:class:`RunOptions`: seed, quiet, overwrite) and the output path.

An unknown name is refused, and an earlier name is refused naming the option that replaced it
(the config's ``REPLACED``), whatever the front end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from solvers.options import check_fields, option

from ..errors import InputError
from ..models.options import ModelOptions
from ..options import as_dict, configure, option_fields, unknown_option

InputKind = Literal["image", "mask", "prompt", "prompts", "arguments", "name"]


@dataclass(frozen=True)
class Input:
    """One input of a task.

    Attributes:
        name: its name everywhere (``--mask``, ``mask=`` in recipes, ``run.json``).
        kind: ``image`` / ``mask`` (a file; ``image`` may be a folder or glob when the task
            runs over many), ``prompt``, ``prompts`` (repeatable, front first), ``arguments``
            (``KEY=VALUE`` pairs of a constraint), ``name`` (a registered constraint).
        help: the line ``--help`` shows.
        positional: an argument on the command line (``IMAGE``), else an option.
        required: must be given.
    """

    name: str
    kind: InputKind
    help: str
    positional: bool = False
    required: bool = True

    @property
    def is_file(self) -> bool:
        return self.kind in ("image", "mask")


@dataclass(frozen=True)
class RunOptions:
    """How a run goes, beside what it computes: the same for every task."""

    seed: int | None = option(None, "Seed (default: drawn, recorded).", ge=0)
    quiet: bool = option(False, "No progress bar and no notes.")
    overwrite: bool = option(
        False,
        "Replace an output made with other settings (default: refuse it; one made with these "
        "settings is skipped).",
    )

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class RunResult:
    """What a task's ``run`` returns: the result (it has ``record()``, ``nfe``) and what the
    run read of its inputs for ``run.json`` (``image_mode``, ``mask_fill_fraction``…)."""

    result: Any
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Task:
    """One task, declared once.

    Attributes:
        name: the command's name (``layerdecomp NAME``) and ``command`` in ``run.json``.
        help: the command's help (its first line is the summary).
        config: the options tree (a frozen dataclass, :mod:`layerdecomp.options`).
        inputs: what it takes (:class:`Input`).
        output: ``image`` (``OUTPUT`` a PNG, ``OUTPUT.json`` its record) or ``folder``
            (``OUTPUT/`` with ``run.json`` last).
        output_help: the line ``-o`` shows.
        prepare: ``prepare(request) -> dict`` checks and opens the inputs before the model loads
            (bad input fails in words, before any work).
        run: ``run(backend, request, opened, seed, disable) -> RunResult``: the one run.
        many: the ``image`` input may be a folder or a glob (one output per image).
        settings: the task's own options that say how it runs, not what it computes (left out
            of the fingerprint): a frozen options dataclass, or ``None``.
        run_batch: ``run_batch(backend, requests, seed, disable) -> list[RunResult]``: several
            images as one batch (``settings.batch_images``), or ``None``.
    """

    name: str
    help: str
    config: type
    inputs: tuple[Input, ...]
    output: Literal["image", "folder"]
    output_help: str
    prepare: Callable[[Request], dict[str, Any]]
    run: Callable[..., RunResult]
    many: bool = False
    settings: type | None = None
    run_batch: Callable[..., list[RunResult]] | None = None

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)

    def names(self) -> dict[str, str]:
        """Every name a request of this task may set → what it is (``input``, ``option``,
        ``model``, ``run``, ``output``)."""
        out = {i.name: "input" for i in self.inputs}
        out.update({name: "option" for name in option_fields(self.config)})
        out.update({name: "model" for name in option_fields(ModelOptions)})
        out.update({name: "run" for name in option_fields(RunOptions)})
        if self.settings is not None:
            out.update({name: "settings" for name in option_fields(self.settings)})
        out["output"] = "output"
        return out


@dataclass(frozen=True)
class Request:
    """A checked request of a task: everything one run needs."""

    task: Task
    inputs: dict[str, Any]
    config: Any
    model: ModelOptions
    run: RunOptions
    output: Path
    settings: Any = None

    def flat(self) -> dict[str, Any]:
        """Every name → value, JSON-ready (``layerdecomp run --dry-run``)."""
        out: dict[str, Any] = {}
        for key, value in self.inputs.items():
            out[key] = (
                [list(v) if isinstance(v, tuple) else v for v in value]
                if isinstance(value, tuple)
                else value
            )
        out.update(as_dict(self.config))
        out.update(self.model.record())
        for group in (self.run, self.settings):
            if group is not None:
                out.update({f.name: getattr(group, f.name) for f in fields(group)})
        out["output"] = self.output
        return {k: str(v) if isinstance(v, Path) else v for k, v in out.items()}


def _dataclass_from(cls: type, values: Mapping[str, Any]):
    try:
        return cls(**values)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _input_value(spec: Input, value: Any) -> Any:
    if spec.kind == "prompts":
        items = [value] if isinstance(value, str) else list(value)
        if not all(isinstance(v, str) for v in items):
            raise InputError(f"{spec.name}: expected text, got {value!r}")
        return tuple(items)
    if spec.kind == "arguments":
        pairs = value.items() if isinstance(value, Mapping) else value
        return tuple((str(k), v) for k, v in pairs)
    if spec.is_file:
        if not isinstance(value, str | Path) or not str(value):
            raise InputError(f"{spec.name}: expected a path, got {value!r}")
        return value if spec.kind == "image" and spec.positional else Path(value)
    if not isinstance(value, str):
        raise InputError(f"{spec.name}: expected text, got {value!r}")
    return value


def request(task: Task, values: Mapping[str, Any]) -> Request:
    """Sort a front end's flat ``values`` into a checked :class:`Request` of ``task``.

    Names left out keep their defaults (the config's, :class:`ModelOptions`',
    :class:`RunOptions`'); ``None`` means left out.

    Raises:
        InputError: an unknown or renamed name, a missing input or output, a value an option
            refuses.
    """
    names = task.names()
    groups: dict[str, dict[str, Any]] = {
        "input": {},
        "option": {},
        "model": {},
        "run": {},
        "settings": {},
    }
    output = None
    for key, value in values.items():
        where = names.get(key)
        if where is None:
            what = f"not an option of {task.name}"
            raise InputError(unknown_option(task.config, key, names, what))
        if value is None:
            continue
        if where == "output":
            output = Path(value)
        else:
            groups[where][key] = value
    config = configure(task.config, None, groups["option"])
    model = _dataclass_from(ModelOptions, groups["model"])
    run = _dataclass_from(RunOptions, groups["run"])
    settings = _dataclass_from(task.settings, groups["settings"]) if task.settings else None
    inputs = {}
    for spec in task.inputs:
        if spec.name in groups["input"]:
            inputs[spec.name] = _input_value(spec, groups["input"][spec.name])
        elif spec.required:
            raise InputError(_missing(spec.name, "PATH" if spec.is_file else "TEXT"))
    if output is None:
        raise InputError(_missing("output", "PATH"))
    return Request(task, inputs, config, model, run, output, settings)


def _missing(name: str, hint: str) -> str:
    return f"missing key {name!r} (give {name}={hint})"


__all__ = ["Input", "InputKind", "RunResult", "Request", "RunOptions", "Task", "request"]
