"""``run.json``: what every run records next to its outputs, built in this one place.

Whoever runs a task (a command, a recipe, the web page, a folder run) records the same
envelope: the task, its inputs, where the outputs went, the result's own record (the options by
name, the seed, NFE, the trace), the model and its options, the timings, the versions, the
fingerprint that decides whether a rerun may skip the output, and the recipe it came from.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .fingerprint import versions


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def run_record(
    command: str,
    *,
    inputs: Mapping[str, Any],
    output: str | Path,
    result: Mapping[str, Any],
    model: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    timings: Mapping[str, float] | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    recipe: Mapping[str, Any] | None = None,
    libraries: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The ``run.json`` of one run.

    Args:
        command: the task (``decompose``, ``inpaint``…) or the front end (``serve``).
        inputs: the inputs by name (paths, prompts) and what was read of them (``image_mode``).
        output: where the outputs went.
        result: the result's own record (:meth:`Layers.record`,
            :meth:`~layerdecomp.tasks.ConstrainedOutput.record`): ``parameters``, ``seed``,
            ``nfe``, ``timings``…
        model: the backend's description (``backend.describe()``), with ``device`` and ``dtype``
            (``None``: not known to the caller, as in :meth:`Layers.save`).
        options: more parameters beside the task's (the model options), merged into
            ``parameters``.
        timings: seconds around the result's own (``load`` before it, ``total`` after).
        fingerprint: the output's fingerprint (:func:`~.fingerprint.request_fingerprint`).
        recipe: the recipe the run came from.
        libraries: more packages whose versions are recorded (the server adds ``fastapi``).
    """
    record = {"command": command, **{k: _plain(v) for k, v in inputs.items()}}
    record["output"] = str(output)
    record.update(result)
    record["parameters"] = {**result.get("parameters", {}), **(options or {})}
    if model is not None:
        record["model"] = dict(model)
        record["device"], record["dtype"] = model.get("device"), model.get("dtype")
    spent = dict(result.get("timings", {}))
    before = {k: v for k, v in (timings or {}).items() if k != "total"}
    after = {k: v for k, v in (timings or {}).items() if k == "total"}
    record["timings"] = {k: round(v, 4) for k, v in {**before, **spent, **after}.items()}
    record["versions"] = versions(*libraries)
    if fingerprint is not None:
        record["fingerprint"] = dict(fingerprint)
    if recipe is not None:
        record["recipe"] = dict(recipe)
    return record


__all__ = ["run_record"]
