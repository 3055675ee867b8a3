"""The constrained sampler: diffusers-equivalent stepping, exact-oracle inpainting, bookkeeping."""

import pytest
import torch
from diffusers import EulerDiscreteScheduler

from solvers import Denoiser, RefineOptions, SampleOptions, Schedule, initial_noise, sample
from tests.oracles import (
    GaussianDenoiser,
    LinearDenoiser,
    ddim_scheduler,
    mask_constraint,
    rbf_covariance,
)

SIDE = 16


def no_constraint(x0):
    return torch.zeros_like(x0), torch.zeros(x0.shape[0], dtype=x0.dtype)


def linear_model(seed=0, d=2 * 4 * 4):
    g = torch.Generator().manual_seed(seed)
    matrix = torch.randn(d, d, generator=g, dtype=torch.float64) / d**0.5
    return LinearDenoiser(matrix, torch.randn(d, generator=g, dtype=torch.float64), (2, 4, 4))


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_stepping_matches_diffusers_ddim_loop(prediction_type, eta):
    model = linear_model()
    reference = ddim_scheduler(prediction_type=prediction_type)
    reference.set_timesteps(10)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64)
    for t in reference.timesteps:
        x = reference.step(model(x, t), t, x, eta=eta, generator=g).prev_sample

    scheduler = ddim_scheduler(prediction_type=prediction_type)
    g = torch.Generator().manual_seed(7)  # one stream: the initial noise, then the scheduler's
    x_t = initial_noise(scheduler, (3, 2, 4, 4), generator=g, dtype=torch.float64)
    out = sample(
        Denoiser(model, scheduler),
        no_constraint,
        x_t,
        SampleOptions(steps=10, refine=RefineOptions(iters=0), eta=eta),
        generator=g,
    )
    assert torch.allclose(out.sample, x, rtol=1e-6, atol=1e-6)
    assert out.nfe == 10


def test_stepping_matches_a_k_diffusion_style_scheduler():
    """Schedulers that scale their model input (Euler) run through the same loop."""
    model = linear_model(1)
    config = ddim_scheduler().config
    reference = EulerDiscreteScheduler.from_config(config)
    reference.set_timesteps(8)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64) * reference.init_noise_sigma
    for t in reference.timesteps:
        x = reference.step(model(reference.scale_model_input(x, t), t), t, x).prev_sample

    scheduler = EulerDiscreteScheduler.from_config(config)
    scheduler.set_timesteps(8)  # init_noise_sigma follows the schedule, as in the reference
    g = torch.Generator().manual_seed(3)
    x_t = initial_noise(scheduler, (2, 2, 4, 4), generator=g, dtype=torch.float64)
    out = sample(
        Denoiser(model, scheduler),
        no_constraint,
        x_t,
        SampleOptions(steps=8, refine=RefineOptions(iters=0)),
        generator=g,
    )
    assert torch.allclose(out.sample, x, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def inpainting():
    """A smooth Gaussian field on 16×16, its exact denoiser, and the left half known."""
    scheduler = ddim_scheduler()
    denoiser = GaussianDenoiser(
        torch.zeros(SIDE * SIDE, dtype=torch.float64),
        rbf_covariance(SIDE),
        (1, SIDE, SIDE),
        scheduler,
    )
    truth = denoiser.sample_prior(3, torch.Generator().manual_seed(0))
    known = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.float64)
    known[..., : SIDE // 2] = 1
    return denoiser, scheduler, truth, known


def known_rmse(result, truth, known):
    return (((result - truth) * known).pow(2).flatten(1).sum(1) / known.sum()).sqrt()


@pytest.mark.parametrize("step_scale", ["max", "error"])
def test_gaussian_inpainting_fits_the_known_region(inpainting, step_scale):
    denoiser, scheduler, truth, known = inpainting
    g = torch.Generator().manual_seed(1)
    out = sample(
        denoiser,
        mask_constraint(truth * known, known),
        initial_noise(scheduler, truth.shape, generator=g, dtype=torch.float64),
        SampleOptions(refine=RefineOptions(step_scale=step_scale)),
        scheduler=scheduler,
        generator=g,
    )
    assert known_rmse(out.sample, truth, known).max() <= 0.05
    assert out.nfe == 20 * (1 + 2 * 5)
    assert out.residuals.shape == (20, 6, 3)
    # the residual falls over the run ...
    assert (out.residuals[-1, -1] < 0.2 * out.residuals[0, 0]).all()
    if step_scale == "error":
        # ... and within every step, from before the first iteration to after the last
        assert (out.residuals[:, -1] < out.residuals[:, 0]).all()
    else:
        # the paper's max-normalised step overshoots once the residual is below ~λ; it still
        # falls within most steps
        falls = (out.residuals[:, -1] < out.residuals[:, 0]).float().mean()
        assert falls >= 0.75


def test_constraint_pulls_the_sample_toward_the_measurement(inpainting):
    denoiser, scheduler, truth, known = inpainting

    def run(options):
        g = torch.Generator().manual_seed(1)
        x_t = initial_noise(scheduler, truth.shape, generator=g, dtype=torch.float64)
        constraint = mask_constraint(truth * known, known)
        return sample(denoiser, constraint, x_t, options, scheduler=scheduler, generator=g)

    free = run(SampleOptions(refine=RefineOptions(iters=0)))
    held = run(SampleOptions())
    assert (
        known_rmse(held.sample, truth, known) < 0.2 * known_rmse(free.sample, truth, known)
    ).all()
    # the unknown half follows the known half through the prior's correlations
    unknown = 1 - known
    assert (
        known_rmse(held.sample, truth, unknown).mean()
        < known_rmse(free.sample, truth, unknown).mean()
    )


def test_gradient_direction_counts_backward_passes(inpainting):
    denoiser, scheduler, truth, known = inpainting
    g = torch.Generator().manual_seed(1)
    out = sample(
        denoiser,
        mask_constraint(truth * known, known),
        initial_noise(scheduler, truth.shape, generator=g, dtype=torch.float64),
        SampleOptions(steps=4, refine=RefineOptions(iters=2, direction="gradient")),
        scheduler=scheduler,
        generator=g,
    )
    assert out.backward == 4 * 2
    assert out.nfe == 4 * (1 + 2)  # per step: x̂0, then one forward (with its graph) an iteration


def test_batch_elements_are_independent(inpainting):
    """Per-sample δ and normalisation: a batch equals its samples run one at a time."""
    denoiser, scheduler, truth, known = inpainting
    x_t = torch.randn(truth.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    scaled = truth.clone()
    scaled[1] *= 10  # very different error scales within the batch
    options = SampleOptions(steps=5, refine=RefineOptions(iters=3))
    together = sample(
        denoiser, mask_constraint(scaled * known, known), x_t, options, scheduler=scheduler
    )
    for i in range(3):
        alone = sample(
            denoiser,
            mask_constraint(scaled[i : i + 1] * known, known),
            x_t[i : i + 1],
            options,
            scheduler=scheduler,
        )
        assert torch.allclose(together.sample[i : i + 1], alone.sample, atol=1e-9)


def test_start_step_restarts_and_callback(inpainting):
    denoiser, scheduler, truth, known = inpainting
    x_t = torch.randn(truth.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    seen = []
    out = sample(
        denoiser,
        mask_constraint(truth * known, known),
        x_t,
        SampleOptions(steps=20, refine=RefineOptions(iters=2), restarts=2, restart_strength=0.25),
        scheduler=scheduler,
        start_step=12,
        generator=torch.Generator().manual_seed(0),
        callback=seen.append,
    )
    assert out.residuals.shape[0] == 8 + 2 * 5 == len(seen) == len(out.timesteps)
    assert [s["restart"] for s in seen] == [0] * 8 + [1] * 5 + [2] * 5
    assert out.timesteps[8] == int(scheduler.timesteps[15])
    keys = {"step", "steps", "total", "timestep", "x_t", "x0", "sample", "residual", "nfe"}
    assert keys | {"restart"} == set(seen[0])
    assert [s["step"] for s in seen] == [*range(12, 20), *range(15, 20), *range(15, 20)]
    assert all(s["steps"] == 20 and s["total"] == 18 for s in seen)
    # timesteps are plain numbers (read once), the same as the scheduler's
    assert all(type(s["timestep"]) is int for s in seen)
    assert [s["timestep"] for s in seen] == out.timesteps
    assert out.timesteps[:8] == scheduler.timesteps[12:].tolist()
    assert [s["nfe"] for s in seen] == [(n + 1) * (1 + 2 * 2) for n in range(18)]
    assert torch.equal(seen[-1]["sample"], out.sample) and torch.equal(seen[-1]["x0"], out.x0)
    assert torch.equal(seen[-1]["residual"], out.residuals[-1, -1])
    assert out.nfe == 18 * (1 + 2 * 2)


def test_generator_makes_runs_reproducible(inpainting):
    denoiser, scheduler, truth, known = inpainting
    options = SampleOptions(steps=4, refine=RefineOptions(iters=2, perturbation=0.05), eta=1.0)
    constraint = mask_constraint(truth * known, known)

    def run(seed):
        g = torch.Generator().manual_seed(seed)
        x_t = initial_noise(scheduler, truth.shape, generator=g, dtype=torch.float64)
        return sample(denoiser, constraint, x_t, options, scheduler=scheduler, generator=g)

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a.sample, b.sample)
    assert not torch.allclose(a.sample, c.sample)


def test_dynamic_rule_equals_a_constant_half_step_on_normalised_directions(inpainting):
    denoiser, scheduler, truth, known = inpainting
    constraint = mask_constraint(truth * known, known)

    def run(lam):
        g = torch.Generator().manual_seed(2)
        x_t = initial_noise(scheduler, truth.shape, generator=g, dtype=torch.float64)
        options = SampleOptions(steps=4, refine=RefineOptions(iters=3, lam=lam))
        return sample(denoiser, constraint, x_t, options, scheduler=scheduler, generator=g)

    dynamic = run("dynamic")
    constant = run(0.5)
    assert RefineOptions(lam="dynamic").lam == Schedule("dynamic", 0.5, 0.5)
    assert torch.allclose(dynamic.sample, constant.sample, atol=1e-9)


def test_validation_names_the_argument(inpainting):
    denoiser, scheduler, truth, known = inpainting
    constraint = mask_constraint(truth * known, known)
    x_t = torch.zeros_like(truth)
    with pytest.raises(TypeError, match="x_t"):  # the start is required: initial_noise()
        sample(denoiser, constraint, scheduler=scheduler)
    with pytest.raises(ValueError, match="^x_t: expected a torch.Tensor"):
        sample(denoiser, constraint, None, scheduler=scheduler)
    with pytest.raises(ValueError, match="^x_t: expected a batched tensor"):
        sample(denoiser, constraint, x_t[0, 0, 0], scheduler=scheduler)
    with pytest.raises(ValueError, match="^direction"):
        SampleOptions(refine=RefineOptions(direction="adam"))
    with pytest.raises(ValueError, match="^start_step"):
        sample(denoiser, constraint, x_t, scheduler=scheduler, start_step=20)
    with pytest.raises(ValueError, match="^scheduler"):
        sample(lambda x, t: x, constraint, x_t)
    with pytest.raises(ValueError, match="^eta: EulerDiscreteScheduler.step takes no eta"):
        euler = EulerDiscreteScheduler.from_config(scheduler.config)
        sample(denoiser, constraint, x_t, SampleOptions(eta=0.5), scheduler=euler)
    with pytest.raises(ValueError, match="^constraint error: shape"):
        sample(denoiser, lambda x0: (x0[:, :, :2], torch.zeros(3)), x_t, scheduler=scheduler)
    with pytest.raises(ValueError, match="^constraint error: dtype"):
        sample(denoiser, lambda x0: (x0.float(), torch.zeros(3)), x_t, scheduler=scheduler)
