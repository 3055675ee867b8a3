"""Resumable training: a run split into calls equals an uninterrupted one, bit for bit."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from layerdecomp.training.__main__ import main
from layerdecomp.training.checkpoint import MAX_FILE_MB, load_checkpoint, save_checkpoint
from layerdecomp.training.components import make_components
from layerdecomp.training.config import load_config
from layerdecomp.training.progress import Budget
from layerdecomp.training.train import CHECKPOINT, train
from tests.layerdecomp.training.test_training import MICRO

pytestmark = pytest.mark.usefixtures("one_thread")

WEIGHTS = (
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)


@pytest.fixture
def micro(tmp_path):
    path = tmp_path / "micro.toml"
    path.write_text(MICRO.replace("[data]\n", "[data]\npairs = 0.5\n"))
    return load_config(path)


def test_split_run_equals_an_uninterrupted_run(tmp_path, micro):
    whole = train(micro, tmp_path / "whole", log=lambda _: None)
    assert whole is not None
    calls, lines = 0, []
    while train(micro, tmp_path / "split", lines.append, budget=Budget(max_steps=1)) is None:
        calls += 1
        state = load_checkpoint(tmp_path / "split" / CHECKPOINT)
        assert state["phase"] in ("vae", "unet") and calls < 10
    assert calls == 3  # vae 1 | vae 2 | unet 1 | unet 2 + the report
    assert any("run again" in line for line in lines)
    for name in WEIGHTS:
        a, b = load_file(tmp_path / "whole" / name), load_file(tmp_path / "split" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    losses = [json.loads((tmp_path / d / "losses.json").read_text()) for d in ("whole", "split")]
    assert losses[0] == losses[1] and len(losses[0]["unet"]) == 2
    assert load_checkpoint(tmp_path / "split" / CHECKPOINT)["phase"] == "done"


def test_cli_stops_cleanly_and_continues(tmp_path, micro):
    config = tmp_path / "micro.toml"
    out = tmp_path / "run"
    args = ["--config", str(config), "--out", str(out)]
    first = CliRunner().invoke(main, [*args, "--max-minutes", "0.0001"])
    assert first.exit_code == 0, first.output
    assert "run the same command to continue" in first.output
    assert not (out / "model_index.json").exists() and (out / CHECKPOINT / "state.json").is_file()
    second = CliRunner().invoke(main, args)
    assert second.exit_code == 0 and "finished" in second.output, second.output
    assert (out / "model_index.json").is_file()
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 1 and "has finished" in again.output
    other = config.read_text().replace("seed = 0", "seed = 1", 1)
    (tmp_path / "other.toml").write_text(other)
    save_checkpoint(out / CHECKPOINT, {"config": micro.to_dict(), "phase": "vae"})
    refused = CliRunner().invoke(
        main, ["--config", str(tmp_path / "other.toml"), "--out", str(out)]
    )
    assert refused.exit_code == 1 and "another config" in refused.output


def test_bf16_autocast_run_stays_finite(tmp_path, micro):
    config = load_config(None, **{**micro.to_dict(), "precision": "bf16"})
    result = train(config, tmp_path / "bf16", log=lambda _: None)
    losses = json.loads((tmp_path / "bf16" / "losses.json").read_text())
    assert result is not None and all(map(torch.isfinite, torch.tensor(losses["unet"])))


def test_gpu_config_checkpoint_fits_the_transfer_limits(tmp_path):
    """The largest state of gpu.toml, the UNet phase (the VAE in fp16, UNet and text encoder
    weights, AdamW moments, EMA if any), in files of at most 16 MiB, 40 MiB in all (what a
    64 MiB working tree carries beside the code, the wheels and the font)."""
    config = load_config("gpu")
    parts = make_components(config)
    trained = [*parts["unet"].parameters(), *parts["text_encoder"].parameters()]
    state = {
        "vae": {k: v.half() for k, v in parts["vae"].state_dict().items()},
        "weights": {k: parts[k].state_dict() for k in ("unet", "text_encoder")},
        "adam": [torch.zeros_like(p) for p in trained for _ in range(2)],
        "ema": [p.detach().clone() for p in trained] if config.unet.ema_decay > 0 else [],
    }
    files = save_checkpoint(tmp_path / "ck", state)
    sizes = [f.stat().st_size for f in files]
    assert max(sizes) <= MAX_FILE_MB * 10**6 <= 16 * 2**20
    assert len(files) <= 8 and sum(sizes) <= 40 * 2**20
    vae_phase = 3 * 4 * sum(p.numel() for p in parts["vae"].parameters())  # weights + 2 moments
    assert vae_phase <= 40 * 2**20
