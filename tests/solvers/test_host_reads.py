"""No host round-trip per iteration (#25 item 1): a counter on the tensor methods that read a
value back to the host fails if one is added to refine's iterations or sample's steps.

Every call of ``Tensor.item``, ``__bool__``, ``tolist``, ``cpu``, ``numpy``, ``__float__``,
``__int__`` and ``__index__`` is counted (on a GPU each is a device sync) with the first caller
outside torch. The denoiser is the exact Gaussian oracle with its per-timestep constants read
beforehand, so it reads nothing itself; the counts are the solver's (and the scheduler's).
On a GPU, ``torch.cuda.set_sync_debug_mode("error")`` checks the same loop for any sync.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

import solvers
from solvers import FiniteGuard, RefineOptions, SampleOptions, refine, sample
from tests.oracles import GaussianDenoiser, ddim_scheduler, mask_constraint, rbf_covariance

SIDE = 8
READS = ("item", "__bool__", "tolist", "cpu", "numpy", "__float__", "__int__", "__index__")
SOLVERS = os.path.dirname(solvers.__file__)
TORCH = os.path.dirname(torch.__file__)

CACHE_FILLS = {
    ("tolist", "solvers/schedules.py:_linear"),  # a linear λ table, once per (start, end, K)
    ("tolist", "solvers/parameterization.py:_alpha_bar"),  # a schedule's ᾱ_t, once per scheduler
}
"""Host-side tables built once per process or scheduler (CPU tensors, never a device read)."""


def _where(frame) -> str:
    while frame is not None and frame.f_code.co_filename.startswith(TORCH):
        frame = frame.f_back
    if frame is None:
        return "?"
    name = frame.f_code.co_filename
    if name.startswith(SOLVERS):
        name = "solvers/" + os.path.relpath(name, SOLVERS)
    elif "site-packages" in name:
        name = name.split("site-packages" + os.sep, 1)[1]
    return f"{name}:{frame.f_code.co_name}"


class HostReads:
    """The host reads made since :meth:`clear`, as ``(method, "file:function")``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    def clear(self) -> None:
        self.log = []

    def take(self) -> list[tuple[str, str]]:
        log, self.log = self.log, []
        return log


@pytest.fixture
def host_reads(monkeypatch):
    counter = HostReads()
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _name=name, _original=original, **kwargs):
            counter.log.append((_name, _where(sys._getframe(1))))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return counter


def test_the_counter_sees_every_kind_of_read(host_reads):
    x = torch.ones(2)
    host_reads.clear()
    x[0].item(), bool(x[0]), x.tolist(), x.cpu(), x.numpy(), float(x[0]), int(x[0])
    [0, 1][x[0].long()]  # __index__
    if x[0] > 0:  # a Python branch on a tensor value
        pass
    seen = [method for method, _ in host_reads.take()]
    assert seen == [*READS, "__bool__"]


class FrozenGaussian:
    """:class:`GaussianDenoiser` with √ᾱ_t and J_t computed beforehand for the given timesteps:
    the same numbers, no host read. A timestep that is not a plain number (a tensor) is refused."""

    def __init__(self, inner: GaussianDenoiser, timesteps) -> None:
        self.inner, self.scheduler, self.calls = inner, inner.scheduler, 0
        self.table = {}
        for t in timesteps:
            abar = float(inner.scheduler.alphas_cumprod[int(t)])
            self.table[int(t)] = (abar**0.5, inner.jacobian(t))

    def __call__(self, x_t: torch.Tensor, t) -> torch.Tensor:
        assert type(t) is int, f"the timestep reached the denoiser as {type(t).__name__}"
        self.calls += 1
        root_abar, jacobian = self.table[t]
        flat = x_t.reshape(x_t.shape[0], -1).to(self.inner.cov.dtype)
        x0 = self.inner.mean + (flat - root_abar * self.inner.mean) @ jacobian.T
        return x0.reshape(x_t.shape).to(x_t.dtype)


@pytest.fixture(scope="module")
def problem():
    scheduler = ddim_scheduler()
    oracle = GaussianDenoiser(
        torch.zeros(SIDE * SIDE, dtype=torch.float64),
        rbf_covariance(SIDE),
        (1, SIDE, SIDE),
        scheduler,
    )
    truth = oracle.sample_prior(2, torch.Generator().manual_seed(0))
    known = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.float64)
    known[..., : SIDE // 2] = 1
    x_t = torch.randn(truth.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    timesteps = {601}
    for steps in (3, 6):
        scheduler.set_timesteps(steps)
        timesteps |= {int(t) for t in scheduler.timesteps}
    return (
        oracle,
        FrozenGaussian(oracle, sorted(timesteps)),
        mask_constraint(truth * known, known),
        x_t,
    )


def test_the_frozen_oracle_is_the_oracle(problem):
    oracle, frozen, _, x_t = problem
    assert torch.equal(frozen(x_t, 601), oracle(x_t, 601))


def _refine_reads(host_reads, problem, options, guard):
    _, denoiser, constraint, x_t = problem
    host_reads.clear()
    out = refine(denoiser, constraint, x_t, 601, options, guard=guard)
    reads = host_reads.take()
    assert out.residuals.shape == (options.iters + 1, 2)
    return reads


def _without_lambda_table(reads):
    fills = [r for r in reads if r in CACHE_FILLS]
    assert len(fills) == len(set(fills)), reads  # each table once at most, never per iteration
    return [r for r in reads if r not in CACHE_FILLS]


@pytest.mark.parametrize("lam", ["constant:0.3", "dynamic:0.5", "linear:0.5:0.1"])
@pytest.mark.parametrize("direction", ["newton", "gradient"])
def test_refine_with_a_guard_reads_nothing_back(host_reads, problem, direction, lam):
    reads = {}
    for iters in (0, 1, 2, 8):
        options = RefineOptions(iters=iters, direction=direction, lam=lam)
        guard = FiniteGuard()
        reads[iters] = _refine_reads(host_reads, problem, options, guard)
        host_reads.clear()
        guard.raise_if_bad()  # the owner's one read, after the loop
        assert host_reads.take() == [("tolist", "solvers/errors.py:raise_if_bad")]
    # none at all, whatever K, but a host-built table the first time it is needed
    for iters, found in reads.items():
        assert _without_lambda_table(found) == [], (iters, found)


@pytest.mark.parametrize("direction", ["newton", "gradient"])
def test_refine_on_its_own_reads_its_checks_back_once(host_reads, problem, direction):
    """Without a guard, refine owns one and reads it once at its end, whatever K."""
    reads = {
        iters: _refine_reads(
            host_reads, problem, RefineOptions(iters=iters, direction=direction), None
        )
        for iters in (1, 8)
    }
    for found in reads.values():
        assert _without_lambda_table(found) == [("tolist", "solvers/errors.py:raise_if_bad")]


def _sample_reads(host_reads, problem, options):
    _, denoiser, constraint, x_t = problem
    scheduler = denoiser.scheduler
    host_reads.clear()
    out = sample(
        denoiser,
        constraint,
        x_t,
        options,
        scheduler=scheduler,
        generator=torch.Generator().manual_seed(0),
    )
    reads = host_reads.take()
    steps = options.steps + options.restarts * (options.steps - round(0.5 * options.steps))
    assert out.residuals.shape == (steps, options.refine.iters + 1, 2)
    return reads, steps


# per run: the timesteps read once, the NaN/Inf counts read once, the residuals moved once
PER_RUN = [
    ("tolist", "solvers/sampler.py:sample"),
    ("tolist", "solvers/errors.py:raise_if_bad"),
    ("cpu", "solvers/sampler.py:sample"),
]


@pytest.mark.parametrize(
    "refine_options",
    [
        RefineOptions(iters=2, lam="constant:0.3"),
        RefineOptions(iters=3, direction="gradient", lam="dynamic:0.5"),
        RefineOptions(iters=2, lam="constant:0.2", step_scale="error", perturbation=0.05),
        RefineOptions(iters=4),  # the default linear λ
    ],
    ids=["newton", "gradient", "perturbed", "linear"],
)
@pytest.mark.parametrize(("eta", "restarts"), [(0.0, 0), (1.0, 1)])
def test_sample_reads_back_per_run_not_per_step(host_reads, problem, refine_options, eta, restarts):
    reads = {}
    for steps in (3, 6):
        options = SampleOptions(steps=steps, refine=refine_options, eta=eta, restarts=restarts)
        reads[steps] = _sample_reads(host_reads, problem, options)
    for found, steps in reads.values():
        # the three reads of the run, whatever the number of steps (and a table's first fill)
        assert _without_lambda_table(found) == PER_RUN, (steps, found)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("direction", ["newton", "gradient"])
def test_no_device_sync_inside_refine_on_a_gpu(problem, direction):
    """On a GPU, refine with a guard runs with sync debugging set to "error"."""
    oracle, frozen, constraint, x_t = problem
    device = torch.device("cuda")
    cuda = FrozenGaussian.__new__(FrozenGaussian)
    cuda.inner = GaussianDenoiser(
        oracle.mean.to(device), oracle.cov.to(device), oracle.shape, oracle.scheduler
    )
    cuda.scheduler, cuda.calls = oracle.scheduler, 0
    cuda.table = {t: (r, j.to(device)) for t, (r, j) in frozen.table.items()}
    known = torch.zeros(1, 1, SIDE, SIDE, dtype=torch.float64, device=device)
    known[..., : SIDE // 2] = 1
    cuda_constraint = mask_constraint(known * 0.5, known)
    x = x_t.to(device)
    options = RefineOptions(iters=4, direction=direction, lam="constant:0.3")
    guard = FiniteGuard()
    refine(cuda, cuda_constraint, x, 601, options, guard=guard)  # warm-up: lazy inits sync
    torch.cuda.synchronize()
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = refine(cuda, cuda_constraint, x, 601, options, guard=guard)
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    guard.raise_if_bad()
    assert out.residuals.device.type == "cuda"
    assert (out.residuals[-1] < out.residuals[0]).all()
