"""Conversions between ε, v, sample and flow outputs and x̂0, checked against diffusers' steps."""

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler

import solvers
from solvers import Denoiser, add_noise, output_from_x0, x0_from_output
from tests.oracles import ddim_scheduler


def tensors(seed=0, n=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64) for _ in range(n)]


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
@pytest.mark.parametrize("t", [999, 500, 1])
def test_round_trip_ddpm(prediction_type, t):
    scheduler = ddim_scheduler()
    x0, noise = tensors()[:2]
    x_t = add_noise(x0, noise, t, scheduler)
    output = output_from_x0(x0, x_t, t, scheduler, prediction_type)
    assert torch.allclose(x0_from_output(output, x_t, t, scheduler, prediction_type), x0)
    if prediction_type == "epsilon":
        assert torch.allclose(output, noise)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_x0_matches_diffusers_pred_original_sample(prediction_type):
    scheduler = ddim_scheduler(prediction_type=prediction_type)
    scheduler.set_timesteps(20)
    output, x_t = tensors(1)[:2]
    for t in scheduler.timesteps[::5]:
        expected = scheduler.step(output, t, x_t).pred_original_sample
        actual = x0_from_output(output, x_t, t, scheduler, prediction_type)
        assert torch.allclose(actual, expected, rtol=1e-6, atol=1e-6)  # diffusers: float32 ᾱ


def test_add_noise_matches_diffusers():
    scheduler = ddim_scheduler()
    x0, noise = tensors(2)[:2]
    t = torch.tensor([700])
    assert torch.allclose(add_noise(x0, noise, 700, scheduler), scheduler.add_noise(x0, noise, t))


def test_flow_conversion_matches_flow_match_step():
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0)
    scheduler.set_timesteps(10)
    assert solvers.scheduler_prediction_type(scheduler) == "flow"
    x0, noise = tensors(3)[:2]
    t, t_next = scheduler.timesteps[3], scheduler.timesteps[4]
    x_t = add_noise(x0, noise, t, scheduler)  # (1−σ)·x0 + σ·noise
    sigma = scheduler.sigmas[3].double()
    assert torch.allclose(x_t, (1 - sigma) * x0 + sigma * noise)
    velocity = output_from_x0(x0, x_t, t, scheduler, "flow")
    assert torch.allclose(x0_from_output(velocity, x_t, t, scheduler, "flow"), x0)
    scheduler._step_index = 3
    prev = scheduler.step(velocity.float(), t, x_t.float()).prev_sample
    assert torch.allclose(prev.double(), add_noise(x0, noise, t_next, scheduler), atol=1e-5)


def test_denoiser_wraps_a_v_prediction_model():
    scheduler = ddim_scheduler(prediction_type="v_prediction")
    x0, noise = tensors(4)[:2]
    x_t = add_noise(x0, noise, 400, scheduler)
    v = output_from_x0(x0, x_t, 400, scheduler, "v_prediction")
    denoiser = Denoiser(lambda x, t: v, scheduler)
    assert denoiser.prediction_type == "v_prediction"
    assert torch.allclose(denoiser(x_t, 400), x0)


def test_unknown_prediction_type_is_named():
    with pytest.raises(ValueError, match="^prediction_type"):
        Denoiser(lambda x, t: x, DDIMScheduler(), prediction_type="score")
    with pytest.raises(ValueError, match="^prediction_type"):
        x0_from_output(*tensors(5, 2), 10, DDIMScheduler(), "score")
