"""Data parallel runs: which process this is, its shard of the images, its device, and the few
values the processes agree on.

``torchrun`` and ``accelerate launch`` both set ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and
``MASTER_ADDR`` / ``MASTER_PORT``) in every process they start, on one node or several; a plain
``python -m layerdecomp`` sets none and is rank 0 of 1. The processes never exchange images: each
takes every ``world``-th image of the same sorted list. What they do share goes through
:mod:`torch.distributed` with the gloo backend, on CPU tensors whatever device the model runs on:
that every process found its images fit to start, the seed and the run's id, and the counts at
the end. (NCCL would need GPU tensors, and its watchdog aborts a process that waits long for the
others, as the first to finish its shard does.)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from ..errors import InputError

T = TypeVar("T")

TIMEOUT = timedelta(days=7)
"""How long a process waits for the others at a collective: the shards of a large folder may
finish hours apart, and a process that dies makes the launcher stop the rest anyway."""


@dataclass(frozen=True)
class Ranks:
    """This process's place in a launched run: global ``rank`` of ``world``, and ``local`` rank
    on its node (the GPU it takes)."""

    rank: int = 0
    world: int = 1
    local: int = 0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Ranks:
        """The launcher's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (absent: rank 0 of 1).

        Raises:
            InputError: values that are not integers or a rank outside ``[0, WORLD_SIZE)``.
        """
        environ = os.environ if environ is None else environ
        try:
            world = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
            local = int(environ.get("LOCAL_RANK", str(rank)))
        except ValueError:
            raise InputError(
                "RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun and accelerate "
                "set them)"
            ) from None
        if world < 1 or not 0 <= rank < world or local < 0:
            raise InputError(f"RANK={rank}, LOCAL_RANK={local}, WORLD_SIZE={world}: out of range")
        return cls(rank, world, local)

    @property
    def main(self) -> bool:
        """True for rank 0: the process that draws the progress bar and merges the manifest."""
        return self.rank == 0


def shard(items: Sequence[T], ranks: Ranks) -> list[T]:
    """Every ``world``-th item from ``rank`` on: disjoint shards that together are ``items``, of
    sizes that differ by one at most (``items`` in the same order on every rank)."""
    return list(items[ranks.rank :: ranks.world])


def device_for(requested: str, ranks: Ranks) -> str:
    """The device of this process: with several processes ``auto`` and ``cuda`` become
    ``cuda:LOCAL_RANK`` (``auto`` without CUDA stays ``auto``: the CPU, or MPS); an explicit
    ``cuda:N`` or ``cpu`` is kept."""
    if ranks.world > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{ranks.local}"
    return requested


def place(requested: str, ranks: Ranks) -> str:
    """:func:`device_for`, made the current CUDA device when it is one (so that library code that
    says ``cuda`` lands on this process's GPU too)."""
    device = device_for(requested, ranks)
    if device.startswith("cuda:"):
        torch.cuda.set_device(torch.device(device))
    return device


def dtype_name(dtype: str, device: str) -> str:
    """The precision ``--dtype`` resolves to on ``--device`` (``auto``: float16 on a GPU, float32
    on the CPU), as :func:`layerdecomp.models.load_model` will resolve it.

    Raises:
        ModelSpecError: a device that is not there, or an unknown dtype.
    """
    from ..models import select_device, select_dtype

    return str(select_dtype(dtype, select_device(device))).removeprefix("torch.")


class Group:
    """The processes of a run, for the collectives of a folder run (a no-op for one process).

    Joins the default process group from the launcher's environment (``env://``, gloo) unless
    one exists, and leaves it on :meth:`close` if it joined; a caller's group of another backend
    (NCCL) gets a gloo group beside it for these CPU tensors.
    """

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self.owned = False
        self.group = None
        if ranks.world == 1:
            return
        if not dist.is_initialized():
            dist.init_process_group(
                "gloo", rank=ranks.rank, world_size=ranks.world, timeout=TIMEOUT
            )
            self.owned = True
        elif dist.get_backend() != "gloo":
            self.group = dist.new_group(backend="gloo", timeout=TIMEOUT)

    def __enter__(self) -> Group:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.owned and dist.is_initialized():
            dist.destroy_process_group()
            self.owned = False

    def sums(self, values: Sequence[int]) -> list[int]:
        """``values`` summed over the processes, element by element."""
        tensor = torch.tensor(list(values), dtype=torch.int64)
        if self.ranks.world > 1:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=self.group)
        return [int(v) for v in tensor]

    def agree(self, seed: int | None) -> tuple[int, str]:
        """The seed (``seed``, or one drawn on rank 0) and a run id, the same on every process."""
        chosen = [
            secrets.randbits(32) if seed is None else int(seed),
            secrets.token_hex(4),
        ]
        if self.ranks.world > 1:
            dist.broadcast_object_list(chosen, src=0, group=self.group)
        return int(chosen[0]), str(chosen[1])


__all__ = ["TIMEOUT", "Group", "Ranks", "device_for", "dtype_name", "place", "shard"]
