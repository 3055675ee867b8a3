"""Training checkpoints as safetensors shards plus a JSON skeleton, written atomically.

A checkpoint is any nest of dicts, lists, tuples, tensors and JSON scalars (model, optimizer and
EMA state dicts, RNG states, losses). Tensors go to safetensors files of at most
:data:`MAX_FILE_MB` MB each (``huggingface_hub.save_torch_state_dict`` shards them), everything else
to ``state.json``, which refers to each tensor by its key. Nothing is unpickled on load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import save_torch_state_dict
from safetensors.torch import load_file

MAX_FILE_MB = 15
"""Largest safetensors shard in MB (10⁶ bytes): each file fits a 16 MiB transfer limit."""

SHARD_MARGIN = 10**5
"""Bytes kept free in each shard for the safetensors header (the writer counts tensor bytes)."""

STATE = "state.json"


def _pack(obj: Any, key: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        # a clone per tensor: shared storage would be dropped by the writer
        tensors[key] = obj.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _pack(v, f"{key}.{k}", tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_pack(v, f"{key}.{i}", tensors) for i, v in enumerate(obj)]
        return {"__tuple__" if isinstance(obj, tuple) else "__list__": items}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint {type(obj).__name__} at {key!r}")


def _unpack(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__dict__" in obj:
            return {k: _unpack(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unpack(v, tensors) for v in obj["__tuple__"])
        return [_unpack(v, tensors) for v in obj["__list__"]]
    return obj


def save_checkpoint(folder: str | Path, state: dict[str, Any]) -> list[Path]:
    """Write ``state`` to ``folder``, replacing what was there only once all files are written.

    Args:
        folder: The checkpoint folder (its parent must exist).
        state: The nest to save.

    Returns:
        The files written.
    """
    folder = Path(folder)
    tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _pack(state, "s", tensors)
    if tensors:
        save_torch_state_dict(
            tensors,
            tmp,
            filename_pattern="tensors{suffix}.safetensors",
            max_shard_size=MAX_FILE_MB * 10**6 - SHARD_MARGIN,
        )
    (tmp / STATE).write_text(json.dumps(skeleton) + "\n")
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(folder.iterdir())


def checkpoint_exists(folder: str | Path) -> bool:
    """Whether ``folder`` (or the copy a save was replacing when it was stopped) holds one."""
    folder = Path(folder)
    return (folder / STATE).is_file() or (folder.with_name(folder.name + ".old") / STATE).is_file()


def load_checkpoint(folder: str | Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Args:
        folder: The checkpoint folder; if a save was stopped between its two renames, the
            previous checkpoint beside it (``<folder>.old``) is read.
        device: Where the tensors are loaded.

    Returns:
        The nest as saved (tuples stay tuples; dict keys keep their JSON types).

    Raises:
        FileNotFoundError: If there is no checkpoint.
    """
    folder = Path(folder)
    if not (folder / STATE).is_file():
        folder = folder.with_name(folder.name + ".old")
        if not (folder / STATE).is_file():
            raise FileNotFoundError(f"no checkpoint ({STATE}) in {folder.with_suffix('')}")
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(path, device=str(device)))
    return _unpack(json.loads((folder / STATE).read_text()), tensors)
