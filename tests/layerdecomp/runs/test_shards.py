"""Ranks from the launcher's environment, shards of a sorted list, the device of each process."""

from __future__ import annotations

import pytest
import torch

from layerdecomp.errors import InputError
from layerdecomp.runs import Group, Ranks, device_for, shard


def test_ranks_from_the_launchers_environment():
    assert Ranks.from_env({}) == Ranks(0, 1, 0)
    launched = Ranks.from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"})
    assert launched == Ranks(5, 8, 1) and not launched.main
    assert Ranks.from_env({"RANK": "0", "WORLD_SIZE": "2"}).main
    for bad in (
        {"RANK": "2", "WORLD_SIZE": "2"},
        {"RANK": "-1", "WORLD_SIZE": "2"},
        {"RANK": "x", "WORLD_SIZE": "2"},
        {"WORLD_SIZE": "0"},
    ):
        with pytest.raises(InputError, match="RANK"):
            Ranks.from_env(bad)


@pytest.mark.parametrize("count", [0, 1, 5, 12])
@pytest.mark.parametrize("world", [1, 2, 3, 7])
def test_shards_are_disjoint_balanced_and_cover_the_list(count, world):
    items = [f"image{i:02d}" for i in range(count)]
    shards = [shard(items, Ranks(rank, world, rank)) for rank in range(world)]
    flat = [item for part in shards for item in part]
    assert sorted(flat) == items and len(set(flat)) == count
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert all(part == sorted(part) for part in shards)  # each keeps the list's order


def test_each_process_takes_the_gpu_of_its_local_rank(monkeypatch):
    alone, second = Ranks(0, 1, 0), Ranks(3, 4, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device_for("auto", alone) == "auto" and device_for("cuda", alone) == "cuda"
    assert device_for("auto", second) == device_for("cuda", second) == "cuda:1"
    assert device_for("cuda:0", second) == "cuda:0" and device_for("cpu", second) == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_for("auto", second) == "auto"  # no GPU: the CPU (gloo for the collectives)


def test_one_process_agrees_with_itself():
    with Group(Ranks()) as group:
        assert not group.owned
        assert group.sums([1, 2, 3]) == [1, 2, 3]
        assert group.agree(42)[0] == 42
        seed, run = group.agree(None)
        assert 0 <= seed < 2**32 and len(run) == 8
        assert group.agree(None)[1] != run  # a run id per run
