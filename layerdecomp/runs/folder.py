"""The loop over the images of a folder run, shared by ``decompose`` and ``inpaint``.

Every process (:mod:`.shards`) takes its shard of the sorted images and, before any work:

1. removes the atomic writer's leftovers (``.NAME.xxxxxxxx.tmp``) of a killed run next to each
   of its outputs;
2. sorts each output into *skip* (complete, and its recorded fingerprint matches this run's),
   *redo* (missing or incomplete: a folder a killed run left half-written has no marker file;
   or made with other settings and ``--overwrite`` given) and *refuse* (made with other
   settings, no ``--overwrite``);
3. checks every input it will work on.

If any process refuses an output or finds a bad input, no process works: the first that found
one says why in one line (counting the refusals of all), the others exit 1 quietly. Otherwise
the processes agree on the seed and a run id, and each works through its images (only rank 0
draws a progress bar). It removes an output's marker (``run.json``, ``NAME.json``: written last
by the atomic writer) before it writes the output again, so that a run killed in between leaves
an output that is redone, never one that passes for complete, and it records each image in the
manifest (:mod:`.manifest`). An image whose work fails (NaN or Inf, a file that cannot be
written, out of memory) is recorded as failed and the others go on; the run then exits 1 with
one line that counts them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import torch

from ..errors import InputError, LayerdecompError
from .fingerprint import SEED, difference
from .manifest import DONE, FAILED, MANIFEST, SKIPPED, Manifest, merge
from .shards import Group, Ranks, shard

_TEMPORARY = re.compile(r"\.(.+)\.[A-Za-z0-9_]{8}\.tmp")
"""A temporary file of :func:`layerdecomp.io.write_atomically`: ``.NAME.`` + 8 random + ``.tmp``."""


@dataclass
class Item:
    """One image of a folder run.

    Attributes:
        source: the input image.
        output: what the run makes of it (a folder for ``decompose``, an image for ``inpaint``).
        marker: the file written last that holds the fingerprint (``run.json``, ``NAME.json``).
        inputs: the files that decide the result, by name (``image``, ``mask``), to hash.
        fingerprint: this run's fingerprint of the output (set by :func:`run_folder`).
    """

    source: Path
    output: Path
    marker: Path
    inputs: dict[str, Path]
    fingerprint: dict[str, Any] = field(default_factory=dict)


@dataclass
class Task:
    """What a command hands the loop.

    Attributes:
        fingerprint: ``fingerprint(item, seed)``, the fingerprint of ``item``'s output.
        complete: whether every file of ``item``'s output is there (marker included).
        validate: raises :class:`InputError` for an input that cannot be worked on.
        work: ``work(batch, seed)`` makes and writes the outputs of a batch of items (each
            item's ``fingerprint`` goes into its marker); loads the model on first use.
        batches: splits the items to work on into batches (default: one item each).
    """

    fingerprint: Callable[[Item, int], dict[str, Any]]
    complete: Callable[[Item], bool]
    validate: Callable[[Item], None]
    work: Callable[[list[Item], int], None]
    batches: Callable[[list[Item]], list[list[Item]]] = lambda items: [[i] for i in items]


@dataclass
class Outcome:
    """The counts of a folder run over every process, and the seed and run id they agreed on."""

    done: int
    skipped: int
    failed: int
    seed: int
    run: str


def leftovers(folder: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The temporary files a killed atomic write left in ``folder`` (for the targets ``names``;
    all of them when ``None``)."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and (names is None or match.group(1) in names):
            found.append(path)
    return sorted(found)


def _clean(item: Item, temporaries: dict[str, list[Path]]) -> None:
    if item.output.is_dir():
        paths = leftovers(item.output)
    else:
        names = (item.output.name, item.marker.name)
        paths = [path for name in names for path in temporaries.get(name, [])]
    for path in paths:
        path.unlink(missing_ok=True)


def _recorded(marker: Path) -> Any:
    import json

    try:
        return json.loads(marker.read_text(encoding="utf-8")).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def made_otherwise(marker: Path, current: dict[str, Any], seed: int | None) -> str | None:
    """What makes the finished output whose ``marker`` is given another run than ``current``
    (in words), or ``None`` when it was made with the same fingerprint: the rule by which a
    rerun skips an output, or refuses it without ``--overwrite``. With no ``seed`` given (one is
    drawn), any recorded seed will do."""
    return difference(_recorded(marker), current, [SEED] if seed is None else [])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _sort(task, mine, seed, overwrite, temporaries):
    """(to skip, to redo, to refuse with why) of this process's items; with none to refuse,
    checks the inputs to work on."""
    skip, redo, refused = [], [], []
    for item in mine:
        _clean(item, temporaries)
        item.fingerprint = task.fingerprint(item, 0 if seed is None else seed)
        if not task.complete(item):
            redo.append(item)
            continue
        why = made_otherwise(item.marker, item.fingerprint, seed)
        if why is None:
            skip.append(item)
        elif overwrite:
            redo.append(item)
        else:
            refused.append((item, why))
    if not refused:
        for item in redo:
            task.validate(item)
    return skip, redo, refused


def _refusal(refused: list[tuple[Item, str]], total: int) -> InputError:
    item, why = refused[0]
    more = f" ({total - 1} more outputs differ too)" if total > 1 else ""
    return InputError(f"{item.output}: {why}; use --overwrite to redo it{more}")


def _failures():
    from solvers import NonFiniteError

    return (LayerdecompError, NonFiniteError, torch.cuda.OutOfMemoryError)


def run_folder(
    task: Task,
    items: Sequence[Item],
    folder: Path,
    *,
    seed: int | None,
    overwrite: bool,
    quiet: bool,
    verb: str,
    ranks: Ranks | None = None,
) -> Outcome:
    """Run ``task`` over ``items`` (every process gets the same sorted list) into ``folder``.

    Args:
        seed: the seed given (``None``: rank 0 draws one and every process uses it).
        overwrite: redo outputs made with other settings instead of refusing.
        verb: what the command does, for its messages (``decomposed``, ``inpainted``).

    Raises:
        InputError: on the process that found it, an output made with other settings (without
            ``overwrite``) or a bad input, before any work; on rank 0 at the end, images that
            failed. ``click.exceptions.Exit(1)`` on the other processes.
    """
    ranks = ranks or Ranks.from_env()
    mine = shard(list(items), ranks)
    with Group(ranks) as group:
        if ranks.main:
            merge(folder)  # the shards of a killed run, before anyone writes again
        error, refused = None, []
        try:
            temporaries: dict[str, list[Path]] = {}
            for path in leftovers(folder):
                temporaries.setdefault(_TEMPORARY.fullmatch(path.name).group(1), []).append(path)
            skip, redo, refused = _sort(task, mine, seed, overwrite, temporaries)
        except LayerdecompError as exc:
            error = exc
        stopped = error is not None or bool(refused)
        *flags, total = group.sums(
            [int(stopped and r == ranks.rank) for r in range(ranks.world)] + [len(refused)]
        )
        if any(flags):  # the first process that found a reason says it, in one line
            if flags.index(1) == ranks.rank:
                raise error if error is not None else _refusal(refused, total)
            raise click.exceptions.Exit(1)
        seed, run = group.agree(seed)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = Manifest(folder, ranks, run)
        for item in skip:
            manifest.record(item.source, item.output, SKIPPED, 0.0, "fingerprint matches")
        failed = _work(task, redo, manifest, seed, quiet or not ranks.main)
        done, skipped, failed = group.sums([len(redo) - failed, len(skip), failed])
        if ranks.main and ranks.world > 1:
            merge(folder)
    outcome = Outcome(done, skipped, failed, seed, run)
    if failed:
        if not ranks.main:
            raise click.exceptions.Exit(1)
        raise InputError(
            f"{failed} of {len(items)} images failed, the others were {verb}; "
            f"{folder / MANIFEST} has the reasons"
        )
    if ranks.main and done == 0:
        click.echo(f"all {len(items)} images already {verb} in {folder}", err=True)
    return outcome


def _work(task: Task, redo: list[Item], manifest: Manifest, seed: int, hidden: bool) -> int:
    """Work through ``redo``; returns the number of items that failed."""
    from tqdm.auto import tqdm

    failures = _failures()
    failed = 0
    with tqdm(total=len(redo), desc="images", unit="image", disable=hidden or len(redo) < 2) as bar:
        for batch in task.batches(redo):
            begin = time.perf_counter()
            for item in batch:
                item.fingerprint = {**item.fingerprint, SEED: seed}
                item.marker.unlink(missing_ok=True)  # never a new file next to an old marker
            try:
                task.work(batch, seed)
                status, message = DONE, None
            except failures as exc:
                status, message = FAILED, _one_line(exc)
                failed += len(batch)
            seconds = (time.perf_counter() - begin) / len(batch)
            for item in batch:
                manifest.record(item.source, item.output, status, seconds, message)
            bar.update(len(batch))
    return failed


__all__ = ["Item", "Outcome", "Task", "leftovers", "made_otherwise", "run_folder"]
