"""The compiled denoiser (``layerdecomp.models.compiled``) gives eager's output on the CPU.

Structural checks use dynamo with the ``eager`` backend (tracing only, fast); one test runs the
real inductor compiler on the tiny SD 1.x pipeline. The CUDA-graph paths are exercised by
``benchmarks/gpu_suite.py`` where a GPU exists, and by the GPU-only test at the end.
"""

from __future__ import annotations

import inspect

import pytest
import torch

from layerdecomp.models import load_model
from layerdecomp.models.compiled import (
    GraphedCall,
    compile_backend,
    compile_mode,
    denoising_networks,
    device_timestep,
    warm_up,
)
from solvers import gradient, newton

pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(backend, batch=2, side=16):
    g = torch.Generator().manual_seed(0)
    shape = backend.latent_shape(batch, side, side)
    return torch.randn(shape, generator=g), torch.randn(shape, generator=g)


@pytest.fixture
def sd1(sd1_folder):
    backend = load_model(str(sd1_folder), device="cpu")
    yield backend
    compile_backend(backend, "none")


def test_modes_install_and_remove_the_compiled_forward(sd1):
    unet = sd1.unet
    assert denoising_networks(sd1) == {"unet": unet} and compile_mode(sd1) == "none"
    eager_signature = inspect.signature(unet.forward)
    assert compile_backend(sd1, "reduce-overhead", compiler="eager") is sd1
    assert compile_mode(sd1) == "reduce-overhead"
    assert inspect.signature(unet.forward) == eager_signature  # diffusers inspects it
    compile_backend(sd1, "default", compiler="eager")  # recompiling replaces, never nests
    assert unet.forward.eager.__func__ is type(unet).forward
    compile_backend(sd1, "none")
    assert compile_mode(sd1) == "none" and "forward" not in unet.__dict__
    with pytest.raises(ValueError, match="reduce-overhead"):
        compile_backend(sd1, "fast")


def test_traced_denoiser_and_newton_equal_eager(sd1):
    # the gradient direction through the compiled forward runs in the suite's dry run
    # (tests/benchmarks/test_gpu_suite.py) and is compared in the slow inductor test
    x_t, e = _inputs(sd1)
    denoiser = sd1.denoiser("a cat", guidance=3.0)  # batched CFG: one call on [uncond; cond]
    with torch.no_grad():
        eager = [denoiser(x_t, 501), newton(denoiser, x_t, 501, e).h]
        compile_backend(sd1, "default", compiler="eager")
        compiled = [denoiser(x_t, 501), newton(denoiser, x_t, 501, e).h]
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def _inductor_equals_eager(backend, directions):
    x_t, e = _inputs(backend, batch=1)
    denoiser = backend.denoiser("")
    t = torch.tensor(301)
    eager = [direction(denoiser, x_t, t, e) for direction in directions]
    compile_backend(backend, "default")
    seconds = warm_up(lambda: [d(denoiser, x_t, t, e) for d in directions], "cpu", calls=1)
    assert seconds > 0
    for direction, reference in zip(directions, eager, strict=True):
        compiled = direction(denoiser, x_t, t, e)
        torch.testing.assert_close(compiled.x0, reference.x0, rtol=1e-4, atol=1e-5)
        # h = Δx̂0 / δ (then max-normalised): the kernels' ~1e-7 rounding differences in x̂0
        # come back multiplied by 1/δ ≈ 1e3
        torch.testing.assert_close(compiled.h, reference.h, rtol=0, atol=2e-3)


def test_inductor_compiled_pixel_unet_equals_eager(pixel_folder):
    backend = load_model(str(pixel_folder), device="cpu")
    _inductor_equals_eager(backend, [newton])


@pytest.mark.slow
def test_inductor_compiled_sd_unet_equals_eager(sd1):  # about a minute of C++ compilation
    _inductor_equals_eager(sd1, [newton, gradient])


def test_mini_traced_equals_eager():
    backend = load_model("mini", device="cpu")
    x_t, _ = _inputs(backend, batch=1, side=64)
    denoiser = backend.denoiser("a cat face", guidance=2.0)
    t = torch.tensor(401)
    with torch.no_grad():
        eager = denoiser(x_t, t)
        compile_backend(backend, "reduce-overhead", compiler="eager")
        compiled = denoiser(x_t, t)
    compile_backend(backend, "none")
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)


def test_device_timestep_fills_numbers_and_keeps_device_tensors():
    sample = torch.zeros(1)
    assert device_timestep(501, sample).dtype == torch.int64
    assert device_timestep(0.25, sample).item() == 0.25
    t = torch.tensor(7)
    assert device_timestep(t, sample) is t


def test_graphed_call_needs_cuda_inputs():
    with pytest.raises(ValueError, match="CUDA"):
        GraphedCall(torch.sin, torch.zeros(2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_graphed_call_replays_on_new_inputs():
    x = torch.randn(8, device="cuda")
    graphed = GraphedCall(lambda v: (v * 2).sin(), x)
    y = torch.randn(8, device="cuda")
    torch.testing.assert_close(graphed(y), (y * 2).sin())


def test_load_model_compiles_on_request_and_refuses_an_unknown_mode(sd1_folder):
    """``load_model(compile=...)`` (the command line's ``--compile``) installs the compiled
    forward; the compilation itself waits for the first call."""
    from layerdecomp.errors import ModelSpecError

    backend = load_model(str(sd1_folder), device="cpu", compile="default")
    assert compile_mode(backend) == "default"
    assert compile_mode(load_model(str(sd1_folder), device="cpu")) == "none"
    with pytest.raises(ModelSpecError, match="compile: 'fast' is not one of none, default"):
        load_model(str(sd1_folder), device="cpu", compile="fast")
