"""``manifest.jsonl``: one line per image of every folder run, in the output folder.

Each line is a JSON object: ``run`` (the id the processes of one run share), ``rank``,
``image``, ``output``, ``status`` (``done``, ``skipped`` or ``failed``), ``seconds`` (a batch's
time shared equally among its images) and, where there is one, ``message`` (why it failed, or
what matched). Lines accumulate over runs.

A single process appends to ``manifest.jsonl`` itself. With several processes each appends to its
own ``manifest.rank<R>.jsonl`` (appends from several hosts to one file on a network file system
can interleave), and rank 0 moves those lines into ``manifest.jsonl`` once every process is done;
a shard left behind by a killed run is moved in at the start of the next. Every line is written
with one ``write`` call on a file opened for appending and flushed to disk, so a killed process
loses at most the line it was writing; a torn line stays on a line of its own and is skipped when
the manifest is read or a shard moved in.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .shards import Ranks

MANIFEST = "manifest.jsonl"
_SHARD = re.compile(r"manifest\.rank(\d+)\.jsonl")

DONE, SKIPPED, FAILED = "done", "skipped", "failed"


def _append(path: Path, lines: list[str]) -> None:
    if not lines:
        return
    data = "".join(lines).encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a torn line of a killed writer stays a line of its own
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


class Manifest:
    """The manifest lines of one process of one run."""

    def __init__(self, folder: str | os.PathLike, ranks: Ranks, run: str):
        self.folder = Path(folder)
        self.ranks = ranks
        self.run = run
        name = MANIFEST if ranks.world == 1 else f"manifest.rank{ranks.rank}.jsonl"
        self.path = self.folder / name

    def record(
        self,
        image: str | os.PathLike,
        output: str | os.PathLike,
        status: str,
        seconds: float,
        message: str | None = None,
    ) -> None:
        """Append one line (flushed to disk before this returns)."""
        line: dict[str, Any] = {
            "run": self.run,
            "rank": self.ranks.rank,
            "image": str(image),
            "output": str(output),
            "status": status,
            "seconds": round(float(seconds), 4),
        }
        if message is not None:
            line["message"] = message
        _append(self.path, [json.dumps(line) + "\n"])


def _whole_lines(path: Path) -> list[str]:
    """The lines of ``path`` that are complete JSON objects."""
    kept = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            if isinstance(json.loads(line), dict):
                kept.append(line + "\n")
        except json.JSONDecodeError:
            continue  # the torn last line of a killed process
    return kept


def merge(folder: str | os.PathLike) -> int:
    """Move the lines of every ``manifest.rank<R>.jsonl`` in ``folder`` into ``manifest.jsonl``
    (ranks in order) and remove the shards; returns the number of lines moved. Call it only
    while no process of a run is writing."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    shards = sorted(
        (int(m.group(1)), p)
        for p in folder.iterdir()
        if (m := _SHARD.fullmatch(p.name)) and p.is_file()
    )
    moved = 0
    for _, path in shards:
        lines = _whole_lines(path)
        _append(folder / MANIFEST, lines)
        path.unlink()
        moved += len(lines)
    return moved


def read(folder: str | os.PathLike) -> list[dict[str, Any]]:
    """Every line of ``folder``'s ``manifest.jsonl``, oldest first."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return []
    return [json.loads(line) for line in _whole_lines(path)]


__all__ = ["DONE", "FAILED", "MANIFEST", "SKIPPED", "Manifest", "merge", "read"]
