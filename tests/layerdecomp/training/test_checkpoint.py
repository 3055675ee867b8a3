"""Checkpoints: exact round trips of nested state, shards under the size limit, atomic replace."""

from __future__ import annotations

import pytest
import torch

from layerdecomp.training.checkpoint import (
    MAX_FILE_MB,
    checkpoint_exists,
    load_checkpoint,
    save_checkpoint,
)


def _state():
    g = torch.Generator().manual_seed(3)
    return {
        "phase": "unet",
        "losses": [0.5, 0.25],
        "optimizer": {
            "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 5, generator=g)}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "fused": None}],
        },
        "rng": torch.Generator().manual_seed(1).get_state(),
        "half": torch.randn(7, generator=g).to(torch.bfloat16),
    }


def test_round_trip_is_exact(tmp_path):
    state = _state()
    save_checkpoint(tmp_path / "ck", state)
    back = load_checkpoint(tmp_path / "ck")
    assert back["phase"] == "unet" and back["losses"] == [0.5, 0.25]
    inner = back["optimizer"]["state"][0]  # int keys stay ints
    assert torch.equal(inner["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)  # tuples stay tuples
    assert back["optimizer"]["param_groups"][0]["fused"] is None
    assert torch.equal(back["rng"], state["rng"]) and back["half"].dtype == torch.bfloat16
    assert torch.equal(back["half"], state["half"])


def test_shards_stay_under_the_file_limit(tmp_path):
    big = {f"w{i}": torch.zeros(2_000_000) for i in range(5)}  # 5 × 8 MB = 40 MB
    files = save_checkpoint(tmp_path / "ck", {"weights": big})
    shards = [f for f in files if f.suffix == ".safetensors"]
    assert len(shards) >= 3 and all(f.stat().st_size <= MAX_FILE_MB * 10**6 for f in shards)
    back = load_checkpoint(tmp_path / "ck")["weights"]
    assert sorted(back) == sorted(big) and all(torch.equal(back[k], big[k]) for k in big)


def test_replace_keeps_the_old_checkpoint_until_the_new_one_is_complete(tmp_path):
    folder = tmp_path / "ck"
    save_checkpoint(folder, {"step": 1})
    save_checkpoint(folder, {"step": 2})
    assert load_checkpoint(folder)["step"] == 2 and not (tmp_path / "ck.old").exists()
    folder.rename(tmp_path / "ck.old")  # as if stopped between the two renames
    assert checkpoint_exists(folder) and load_checkpoint(folder)["step"] == 2


def test_missing_and_unsupported(tmp_path):
    assert not checkpoint_exists(tmp_path / "none")
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "none")
    with pytest.raises(TypeError, match="cannot checkpoint"):
        save_checkpoint(tmp_path / "ck", {"bad": object()})
