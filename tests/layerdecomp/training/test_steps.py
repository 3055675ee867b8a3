"""The host-free step's pieces (issue #24): device-generator draws, gathered crops, the caption
choice, the foreach EMA, losses read late, the compile fallback, the channels-last layout and the
composites' cache; each against a hand-written reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from layerdecomp.models.compiled import compile_function
from layerdecomp.training import steps as steps_module
from layerdecomp.training.components import make_vae
from layerdecomp.training.config import DataConfig, VAEConfig
from layerdecomp.training.dataset import CACHE, cached_training_data
from layerdecomp.training.loops import train_vae
from layerdecomp.training.progress import Progress, Stepper
from layerdecomp.training.steps import (
    EMA,
    WARM_UP_CALLS,
    backward_step,
    choose,
    cumulative,
    device_generator,
    random_crops,
)
from layerdecomp.training.tokenizer import build_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_VAE = VAEConfig(
    block_out_channels=(8, 16), norm_num_groups=8, steps=3, batch_size=2, crop=8, warmup=1
)


def test_random_crops_are_the_windows_at_the_drawn_offsets():
    images = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8)
    g = device_generator("cpu", 3)
    state = g.get_state()
    crops = random_crops(images, 5, g)
    g.set_state(state)
    offsets = torch.randint(0, 2**62, (5, 2), generator=g) % 8
    expected = torch.stack(
        [im[:, i : i + 5, j : j + 5] for im, (i, j) in zip(images, offsets.tolist(), strict=True)]
    )
    assert crops.dtype == torch.uint8 and torch.equal(crops, expected)
    assert random_crops(images, 12, g) is images


def test_choose_draws_with_the_given_weights():
    cdf = cumulative((1.0, 2.0, 1.0), torch.device("cpu"))
    draws = choose(cdf, 40000, device_generator("cpu", 0))
    shares = torch.bincount(draws, minlength=3).float() / len(draws)
    torch.testing.assert_close(shares, torch.tensor([0.25, 0.5, 0.25]), atol=0.01, rtol=0)
    assert torch.equal(
        choose(cumulative((0.0, 1.0, 0.0), cdf.device), 50, None), torch.ones(50).long()
    )
    with pytest.raises(ValueError, match="non-negative"):
        cumulative((1.0, -1.0), cdf.device)


def test_ema_copies_then_blends_with_the_warmup_decay():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = EMA([p], decay=0.5)
    values = [1.0, 2.0, 4.0, 8.0]
    expected = None
    for n, v in enumerate(values, start=1):
        p.data.fill_(v)
        ema.step()
        d = 0.0 if n == 1 else min(0.5, n / (n + 9))
        expected = v if expected is None else d * expected + (1 - d) * v
        torch.testing.assert_close(ema.shadow[0], torch.full((3,), expected))
    other = EMA([p], decay=0.5)
    other.load_state_dict(ema.state_dict())
    assert other.count == 4 and torch.equal(other.shadow[0], ema.shadow[0])
    other.copy_to()
    assert torch.equal(p.detach(), ema.shadow[0])


def test_stepper_keeps_tensor_losses_until_read():
    progress = Progress()
    stepper = Stepper("x", TINY_VAE, progress, None, lambda _: None)
    stepper.end(torch.tensor(1.5))
    stepper.end(torch.tensor(2.5))
    assert progress.step == 2 and progress.losses == []
    stepper.read()
    assert progress.losses == [1.5, 2.5]
    stepper.end(torch.tensor(3.0))
    stepper.stop()
    assert progress.losses == [1.5, 2.5, 3.0]


def _scalar():
    """A parameter w = 2, its zero_grad and a log, for steps of ``(w * x).sum()``."""
    w = torch.nn.Parameter(torch.tensor([2.0]))

    def zero():
        w.grad = None

    return w, zero, []


def _broken_backend(gm, example_inputs):
    raise RuntimeError("no compiler here")


def test_a_failed_compilation_falls_back_to_eager():
    w, zero, lines = _scalar()
    step = backward_step(
        lambda x: (w * x).sum()[None], "default", zero, lines.append, compiler=_broken_backend
    )
    out = step(torch.tensor([3.0]))
    assert out.tolist() == [6.0] and w.grad.tolist() == [3.0]
    assert len(lines) == 1 and lines[0].endswith("running eagerly")
    assert step(torch.tensor([1.0])).tolist() == [2.0] and w.grad.tolist() == [1.0]
    unknown = backward_step(
        lambda x: (w * x).sum()[None], "default", zero, lines.append, compiler="no-such-backend"
    )
    assert unknown(torch.tensor([1.0])).tolist() == [2.0]
    assert "unavailable" in lines[-1] and lines[-1].endswith("running eagerly")


def test_a_graph_mode_falls_back_to_kernels_then_eager():
    w, zero, lines = _scalar()
    step = backward_step(
        lambda x: (w * x).sum()[None], "reduce-overhead", zero, lines.append, _broken_backend
    )
    assert step(torch.tensor([3.0])).tolist() == [6.0] and w.grad.tolist() == [3.0]
    assert [line.split(" failed")[0] for line in lines] == [
        "torch.compile(reduce-overhead)",
        "torch.compile(default)",
    ]
    assert lines[0].endswith("running in mode default") and lines[1].endswith("running eagerly")


def test_a_failure_while_warming_up_steps_down_and_a_later_one_is_raised():
    """A graph replay that fails on its second call (the recording, on a GPU) moves the step to
    the next mode down; once the step has run WARM_UP_CALLS times, a failure is an error."""
    calls = []

    def flaky(gm, example_inputs):
        def run(*args):
            calls.append(len(calls) + 1)
            if len(calls) in (2, 6):
                raise RuntimeError(f"call {len(calls)}")
            return gm(*args)

        return run

    w, zero, lines = _scalar()
    step = backward_step(
        lambda x: (w * x).sum()[None], "reduce-overhead", zero, lines.append, flaky
    )
    for x in (1.0, 2.0, 3.0, 4.0):
        assert step(torch.tensor([x])).tolist() == [2 * x] and w.grad.tolist() == [x]
    assert len(lines) == 1
    assert "(RuntimeError: call 2); running in mode default" in lines[0]
    assert WARM_UP_CALLS == 3
    with pytest.raises(RuntimeError, match="call 6"):
        step(torch.tensor([5.0]))


@pytest.mark.parametrize("mode", ["default", "reduce-overhead", "max-autotune"])
def test_a_compiled_step_equals_the_eager_one(mode):
    """Every mode of COMPILE_MODES traced (aot_eager: the forward and backward graphs that
    inductor would compile) gives eager's outputs and gradients, call after call."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.GELU(), torch.nn.Linear(8, 1))

    def loss_fn(x):
        loss = net(x).square().mean()
        return torch.stack([loss, x.abs().mean()])

    def zero():
        net.zero_grad(set_to_none=True)

    lines = []
    eager = backward_step(loss_fn, "none", zero, lines.append)
    traced = backward_step(loss_fn, mode, zero, lines.append, compiler="aot_eager")
    for seed in range(3):
        x = torch.randn(5, 4, generator=torch.Generator().manual_seed(seed))
        expected = eager(x)
        grads = [p.grad.clone() for p in net.parameters()]
        out = traced(x)
        torch.testing.assert_close(out, expected)
        for p, g in zip(net.parameters(), grads, strict=True):
            torch.testing.assert_close(p.grad, g)
        assert not out.requires_grad
    assert lines == []


def _vae_run(channels_last: bool, compile_mode: str = "none", log=lambda _: None):
    torch.manual_seed(0)
    vae = make_vae(TINY_VAE, 16)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    state = torch.get_rng_state()
    g = device_generator("cpu", 0)
    losses = train_vae(
        vae, images, TINY_VAE, g, log, channels_last=channels_last, compile_mode=compile_mode
    )
    return vae, losses, torch.equal(torch.get_rng_state(), state)


def test_draws_come_from_the_generator_only_and_channels_last_changes_nothing():
    vae, losses, untouched = _vae_run(channels_last=False)
    assert untouched  # every draw came from the loop's generator, none from torch's global one
    last, last_losses, _ = _vae_run(channels_last=True)
    assert len(losses) == 3 and losses == pytest.approx(last_losses, rel=1e-4)
    for a, b in zip(vae.parameters(), last.parameters(), strict=True):
        assert b.is_contiguous()  # back to the usual layout: safetensors needs it
        # Adam moves a weight by about lr a step, whatever the gradient: the bound is steps · lr
        torch.testing.assert_close(a, b, rtol=0, atol=TINY_VAE.steps * TINY_VAE.lr)


def test_a_compiled_vae_loop_warms_up_without_an_update(monkeypatch):
    """The compiled loop (traced with aot_eager here) takes its warm-up steps on zero inputs
    before the clock starts, with no update and no draw: its losses and weights are eager's."""
    vae, losses, _ = _vae_run(channels_last=False)

    def traced(fn, mode, compiler):
        return compile_function(fn, mode, "aot_eager")

    monkeypatch.setattr(steps_module, "compile_function", traced)
    lines = []
    traced, traced_losses, untouched = _vae_run(False, "reduce-overhead", lines.append)
    assert untouched and traced_losses == pytest.approx(losses, rel=1e-5)
    assert lines[0].startswith("vae: compiled and warmed up in")
    assert lines[1].startswith("vae step 1/3")
    for a, b in zip(vae.parameters(), traced.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_composites_are_cached_in_the_run_folder(tmp_path, monkeypatch):
    cfg = DataConfig(size=16, num_train=3, pairs=0.5)
    tokenizer = build_tokenizer(max_length=16)
    first = cached_training_data(cfg, tokenizer, tmp_path)
    assert (tmp_path / CACHE).is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("rendered again")

    monkeypatch.setattr("layerdecomp.training.dataset.make_training_data", refuse)
    again = cached_training_data(cfg, tokenizer, tmp_path)
    assert all(
        torch.equal(getattr(first, k), getattr(again, k)) for k in ("images", "tokens", "empty")
    )
    with pytest.raises(AssertionError, match="rendered again"):
        cached_training_data(dataclasses.replace(cfg, seed=1), tokenizer, tmp_path)


def test_tensor_rendered_training_data_has_the_captions_of_its_pictures():
    from layerdecomp.training.dataset import tensor_training_data

    cfg = DataConfig(size=16, num_train=24, pairs=0.25, renderer="tensor")
    tokenizer = build_tokenizer(max_length=16)
    data = tensor_training_data(cfg, tokenizer, "cpu", batch=8)
    assert data.images.shape == (24, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.tokens.shape == (24, 3, 16)
    for i, ids in enumerate(data.tokens):
        fg, bg, both = (tokenizer.decode(row, skip_special_tokens=True) for row in ids)
        assert both == f"{fg} on {bg}", i
        assert (" and " in fg) == (i >= 18)  # the 6 pairs come last
