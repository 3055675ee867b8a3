"""Resumable training: a run split into calls equals an uninterrupted one, bit for bit."""

from __future__ import annotations

import json
import time

import pytest
import torch
from click.testing import CliRunner
from diffusers import StableDiffusionPipeline
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


def test_gpu_config_is_one_run_with_weight_files_under_15_mb():
    """gpu.toml runs in one call (no checkpoint travels), and each shipped fp16 weight file
    (UNet, VAE, text encoder) stays under 15 MB, what a 16 MiB transfer limit carries."""
    config = load_config("gpu")
    assert config.minutes > 0 and config.device == "cuda" and config.precision == "bf16"
    parts = make_components(config)
    for name in ("unet", "vae", "text_encoder"):
        fp16 = 2 * sum(p.numel() for p in parts[name].parameters())
        assert fp16 <= MAX_FILE_MB * 10**6 - 10**5, name


def test_one_run_finishes_within_its_minutes(tmp_path):
    """The tiny one-run config (time-bound: its steps are a ceiling it never reaches) renders,
    trains both models and reports inside `--minutes`, the VAE taking `vae_share` of the time."""
    out = tmp_path / "one"
    began = time.monotonic()
    result = CliRunner().invoke(main, ["--config", "tiny", "--out", str(out), "--minutes", "0.2"])
    wall = time.monotonic() - began
    assert result.exit_code == 0 and "finished" in result.output, result.output
    assert wall <= 0.2 * 60 + 10  # the report's reserve is an estimate: some slack
    assert (out / "model_index.json").is_file() and not (out / "data.safetensors").exists()
    losses = json.loads((out / "losses.json").read_text())
    assert 0 < len(losses["vae"]) < 100000 and 0 < len(losses["unet"]) < 100000
    pipe = StableDiffusionPipeline.from_pretrained(out, dtype=torch.float32)
    assert pipe.unet.config.sample_size == 16  # 32 px, factor 2
