"""The training loops and reports on synthetic tensors (no composites, so no emoji font needed).

Learning-rate schedule, time-limited annealing, EMA and PSNR are checked against hand-written
formulas, not against the libraries that implement them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from layerdecomp.training.components import make_components, make_vae
from layerdecomp.training.config import UNetConfig, VAEConfig, load_config
from layerdecomp.training.loops import TrainingData, tokenize, train_unet, train_vae
from layerdecomp.training.progress import advance_schedule, lr_schedule
from layerdecomp.training.report import image_grid
from layerdecomp.training.train import reconstructions

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_VAE = VAEConfig(
    block_out_channels=(8, 16), norm_num_groups=8, steps=3, batch_size=2, crop=16, warmup=1
)


def _scheduled(cfg):
    """An SGD optimizer and its schedule; the optimizer has stepped once, as in a loop."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    schedule = lr_schedule(opt, cfg)
    opt.step()  # no gradient: nothing changes
    return opt, schedule


def test_schedule_is_linear_warmup_then_cosine_to_zero():
    cfg = UNetConfig(steps=10, warmup=2, lr=1.0)
    opt, schedule = _scheduled(cfg)
    rates = []
    for step in range(cfg.steps + 1):
        assert advance_schedule(schedule, step, cfg, elapsed=0.0) == step
        rates.append(opt.param_groups[0]["lr"])
    expected = [0.0, 0.5] + [0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 11)]
    assert rates == pytest.approx(expected, abs=1e-12)
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)


def test_time_limit_moves_the_schedule_ahead_of_the_steps():
    cfg = UNetConfig(steps=100, warmup=0, lr=2.0, max_minutes=1.0)
    opt, schedule = _scheduled(cfg)
    assert advance_schedule(schedule, 1, cfg, elapsed=30.0) == 50  # half the time: half-way
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)  # 2 · ½(1 + cos(π/2))
    assert advance_schedule(schedule, 2, cfg, elapsed=30.0) == 50  # never back
    assert advance_schedule(schedule, 60, cfg, elapsed=30.0) == 60  # steps ahead of time
    assert advance_schedule(schedule, 61, cfg, elapsed=600.0) == 100  # capped at the end
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    untimed = UNetConfig(steps=100, warmup=0, max_minutes=0.0)
    assert advance_schedule(_scheduled(untimed)[1], 3, untimed, 1e6) == 3


def test_train_vae_on_synthetic_images():
    torch.manual_seed(0)
    vae = make_vae(TINY_VAE, 16)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    before = [p.detach().clone() for p in vae.parameters()]
    lines = []
    losses = train_vae(vae, images, TINY_VAE, torch.Generator().manual_seed(0), lines.append)
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert any(not torch.equal(a, b) for a, b in zip(before, vae.parameters(), strict=True))
    assert not vae.training and lines[0].startswith("vae step 1/3")
    timed_out = dataclasses.replace(TINY_VAE, max_minutes=1e-9)
    lines.clear()
    assert train_vae(vae, images, timed_out, torch.Generator(), lines.append) == []
    assert lines == ["vae: time limit of 1e-09 min reached at step 0"]


def _unet_setup():
    config = load_config(
        None,
        data={"size": 16},
        vae={"block_out_channels": [8, 16], "norm_num_groups": 8},
        text={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
        unet={"block_out_channels": [16, 32], "norm_num_groups": 8, "attention_head_dim": 4},
    )
    torch.manual_seed(0)
    parts = make_components(config)
    tokens = tokenize(parts["tokenizer"], ["a cat face", "blue stripes", "a cat face on blue"])
    data = TrainingData(
        images=torch.zeros(2, 3, 16, 16, dtype=torch.uint8),
        tokens=tokens.view(1, 3, -1).repeat(2, 1, 1),
        empty=tokenize(parts["tokenizer"], [""])[0],
    )
    g = torch.Generator().manual_seed(1)
    latents = (torch.randn(2, 4, 8, 8, generator=g), 0.1 * torch.ones(2, 4, 8, 8))
    return config, parts, data, latents


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_unet_ends_with_the_ema_of_its_weights(ema_decay):
    """Two steps: the EMA copies update 1, then blends update 2 with decay min(0.9, 2/11)."""
    config, parts, data, latents = _unet_setup()
    unet = parts["unet"]
    cfg = dataclasses.replace(
        config.unet, steps=2, batch_size=2, warmup=0, lr=1e-2, ema_decay=ema_decay
    )
    after_step = []

    def snapshot(optimizer, args, kwargs):
        after_step.append([p.detach().clone() for p in unet.parameters()])

    handle = register_optimizer_step_post_hook(snapshot)
    try:
        losses = train_unet(
            unet,
            parts["text_encoder"],
            parts["scheduler"],
            latents,
            data,
            cfg,
            config.data,
            torch.Generator().manual_seed(0),
            log=lambda line: None,
        )
    finally:
        handle.remove()
    assert len(losses) == 2 and len(after_step) == 2
    first, second = after_step
    assert any(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    decay = min(ema_decay, 2 / 11)
    for p, p1, p2 in zip(unet.parameters(), first, second, strict=True):
        expected = p2 if ema_decay == 0 else decay * p1 + (1 - decay) * p2
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-6)


def test_reconstruction_psnr_and_grid():
    torch.manual_seed(0)
    vae = make_vae(TINY_VAE, 16).eval()
    originals = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    grid, score = reconstructions(vae, originals)
    assert grid.size == (3 * 32, 2 * 32)
    pixels = np.asarray(grid)
    top = [pixels[:32:2, 32 * i : 32 * (i + 1) : 2] for i in range(3)]
    recon = [pixels[32::2, 32 * i : 32 * (i + 1) : 2] for i in range(3)]
    assert all(np.array_equal(t, o) for t, o in zip(top, originals, strict=True))
    pairs = zip(recon, originals, strict=True)
    mse = [np.mean((r.astype(float) - o.astype(float)) ** 2) for r, o in pairs]
    assert score == pytest.approx(np.mean([10 * np.log10(255.0**2 / m) for m in mse]), rel=1e-5)


def test_image_grid_tiles_pads_and_labels():
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (9, 9, 9), (200, 100, 0)]
    images = [np.full((4, 6, 3), c, dtype=np.uint8) for c in colours]
    grid = np.asarray(image_grid(images, columns=2, scale=2, labels=["a", "b", "c"]))
    band = 4 * 2 + 12
    assert grid.shape == (3 * band, 2 * 6 * 2, 3)
    for i, colour in enumerate(colours):
        r, c = divmod(i, 2)
        tile = grid[r * band + 12 : (r + 1) * band, c * 12 : (c + 1) * 12]
        assert (tile == colour).all(), i
    assert (grid[2 * band + 12 :, 12:] == 255).all()  # the padding tile is white
    strip = grid[:12]
    assert (strip != 255).any() and (strip[:, 12:] == 255).all()  # the label "a", top left
    plain = np.asarray(image_grid(images[:4], columns=2))
    assert plain.shape == (8, 12, 3) and (plain[4:, 6:] == 9).all()
