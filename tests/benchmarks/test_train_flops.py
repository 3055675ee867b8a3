"""The training step's FLOP count (benchmarks/train_flops.py): every counted op is per sample,
so twice the batch is exactly twice the FLOPs, and the backward makes the step about three
forwards."""

import runpy
from pathlib import Path

import pytest
import torch

from layerdecomp.training.components import make_components
from layerdecomp.training.config import load_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "train_flops.py"


@pytest.fixture(scope="module")
def script():
    return runpy.run_path(str(SCRIPT), run_name="train_flops")


def test_flops_are_linear_in_the_batch(script):
    one = script["step_flops"]("tiny")
    two = script["step_flops"](
        "tiny", vae={"batch_size": 16}, unet={"batch_size": 16}
    )  # tiny's batches are 8
    for loop in ("vae", "unet"):
        assert one[loop]["batch"] == 8 and two[loop]["batch"] == 16
        assert one[loop]["flops"] > 0 and two[loop]["flops"] == 2 * one[loop]["flops"]


def test_a_unet_step_costs_about_three_forwards(script):
    config = load_config("tiny")
    unet = make_components(config)["unet"].to(script["META"])
    b, side = (
        config.unet.batch_size,
        config.data.size // 2 ** (len(config.vae.block_out_channels) - 1),
    )
    z = torch.randn(b, config.vae.latent_channels, side, side, device=script["META"])
    ctx = torch.randn(b, config.text.max_length, config.text.hidden_size, device=script["META"])
    t = torch.zeros(b, dtype=torch.long, device=script["META"])
    with torch.no_grad():
        forward = script["flops"](lambda: unet(z, t, ctx))
    step = script["step_flops"]("tiny")["unet"]["flops"]
    assert 2.9 * forward < step < 3.2 * forward  # input and weight grads; a little text encoder
