"""The memory budget's parts: the counted peak, the row cost, the chunks, the per-row conditioning,
the plan's error, and checkpointed chunks under autograd."""

import re
from dataclasses import dataclass

import pytest
import torch

from layerdecomp.errors import ModelSpecError
from layerdecomp.models.memory import (
    GIB,
    MARGIN,
    MemoryPlan,
    RowCost,
    chunks,
    condition_rows,
    counted_peak,
    measure_rows,
    run_chunks,
)


def test_the_count_sees_new_tensors_while_alive_and_not_views_or_older_ones():
    before = torch.zeros(1000)

    def work():
        a = torch.empty(1000)  # 4000 bytes
        view = a.view(10, 100)  # no new storage
        b = a + 1  # 4000 more: the peak
        del a, view
        c = b * 2  # a was freed: still 8000 alive
        before.add_(1)  # in place: nothing new
        return c

    assert counted_peak(work) == 8000


def test_a_fake_count_runs_no_kernel_and_counts_alike():
    weight = torch.randn(64, 32)

    def work():
        return torch.relu(torch.randn(8, 64) @ weight)

    assert counted_peak(work, fake=True) == counted_peak(work) == 8 * 64 * 4 + 8 * 32 * 4


def test_the_row_cost_is_the_slope_and_the_rest():
    table = torch.randn(1, 256)

    def call(start, stop, x):
        return (x @ table).exp()  # rows × 256 floats twice

    cost = measure_rows(call, torch.randn(4, 1))
    assert cost.per_row == 2 * 256 * 4 and cost.fixed == 0
    assert cost.peak(3) == 3 * 2 * 256 * 4
    assert RowCost(fixed=100, per_row=10).rows_within(135) == 3
    assert RowCost(fixed=100, per_row=10).rows_within(50) == 0


def test_chunks_cover_the_batch_as_split_does():
    assert chunks(12, 5) == [(0, 5), (5, 10), (10, 12)]
    assert chunks(7, 2) == [(0, 2), (2, 4), (4, 6), (6, 7)]
    assert chunks(3, 3) == [(0, 3)]
    for batch in range(1, 20):
        for rows in range(1, batch + 1):
            parts = chunks(batch, rows)
            assert parts[0][0] == 0 and parts[-1][1] == batch
            assert all(0 < stop - start <= rows for start, stop in parts)
            assert len(parts) == -(-batch // rows)


@dataclass
class Cond:
    embeds: torch.Tensor
    pooled: torch.Tensor | None = None
    scale: float = 1.0


def test_each_row_gets_its_prompts_conditioning():
    embeds = torch.arange(3.0).view(3, 1, 1).expand(3, 2, 5)
    cond = Cond(embeds, torch.arange(3.0).view(3, 1))
    batch = 12  # four rows per prompt, as the backends expand them
    expanded = embeds.repeat_interleave(4, 0)
    for start, stop in [(0, 1), (3, 6), (5, 12), (0, 12)]:
        part = condition_rows(cond, batch, start, stop)
        assert torch.equal(part.embeds, expanded[start:stop])
        assert part.pooled[:, 0].tolist() == [float(i // 4) for i in range(start, stop)]
    one = Cond(embeds[:1])
    assert condition_rows(one, batch, 2, 5) is one  # one prompt: every row's
    assert condition_rows(None, batch, 0, 2) is None
    assert condition_rows(cond, 10, 0, 2) is None  # 10 rows are not a multiple of 3 prompts


def test_the_plan_is_unlimited_on_the_cpu_without_a_budget():
    plan = MemoryPlan(torch.device("cpu"), None, lambda: 0)
    calls = []
    assert not plan.limited
    assert plan.rows("network", torch.zeros(9, 2), lambda *a: calls.append(a)) == 9
    assert not calls  # nothing measured


def test_a_budget_too_small_for_one_row_names_the_smallest_that_fits():
    resident = GIB // 4

    def call(start, stop, x):
        return x.expand(-1, 1 << 20).exp()  # 4 MiB a row

    plan = MemoryPlan(torch.device("cpu"), 0.25, lambda: resident)
    with pytest.raises(ModelSpecError, match=r"max_memory: 0\.25 GiB does not fit") as caught:
        plan.rows("network", torch.zeros(6, 1), call)
    smallest = float(str(caught.value).rsplit(" ", 2)[-2])
    fits = MemoryPlan(torch.device("cpu"), smallest, lambda: resident)
    assert fits.rows("network", torch.zeros(6, 1), call) >= 1
    cost = fits.costs[next(iter(fits.costs))]
    assert cost.per_row == 4 << 20  # the expand is a view: only the exp allocates
    budget = (resident + cost.peak(2) / MARGIN + 64) / GIB  # 64 bytes over: float rounding
    assert (
        MemoryPlan(torch.device("cpu"), budget, lambda: resident).rows(
            "network", torch.zeros(6, 1), call
        )
        == 2
    )
    with pytest.raises(ModelSpecError, match="positive"):
        MemoryPlan(torch.device("cpu"), 0.0, lambda: 0)


def test_one_row_is_checked_too_with_the_same_error():
    """Nothing to split, but a budget below one row's need is the same one line as for a larger
    batch; the smallest budget it names runs the row."""
    resident = GIB // 4
    calls = []

    def call(start, stop, x):
        calls.append(stop - start)
        return x.expand(-1, 1 << 20).exp()  # 4 MiB a row

    def plan(gib):
        return MemoryPlan(torch.device("cpu"), gib, lambda: resident)

    with pytest.raises(ModelSpecError, match=r"0\.25 GiB does not fit one sample") as one:
        plan(0.25).rows("decode", torch.zeros(1, 1), call)
    assert calls == [1]  # one counted call: no second row to measure a slope with
    with pytest.raises(ModelSpecError) as six:
        plan(0.25).rows("decode", torch.zeros(6, 1), call)
    assert str(one.value) == str(six.value)
    smallest = float(str(one.value).rsplit(" ", 2)[-2])
    fits, calls[:] = plan(smallest), []
    assert fits.rows("decode", torch.zeros(1, 1), call) == 1
    assert fits.rows("decode", torch.zeros(1, 1), call) == 1 and calls == [1]  # kept
    fits.rows("decode", torch.zeros(6, 1), call)
    calls.clear()
    again = MemoryPlan(torch.device("cpu"), smallest, lambda: resident, fits.costs)
    assert again.rows("decode", torch.zeros(1, 1), call) == 1 and not calls  # from the slope
    assert MemoryPlan(torch.device("cpu"), None, lambda: 0).rows("x", torch.zeros(1, 1), call) == 1


def test_a_one_sample_network_call_and_decode_check_the_budget(sd1_folder, one_thread):
    from layerdecomp.models import load_model

    backend = load_model(str(sd1_folder), device="cpu")
    x_t = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    denoiser = backend.denoiser("a cat")
    whole = backend.model_fn(backend.encode_prompt("a cat"), 0.0)(x_t, 500)
    image = backend.decode(x_t)
    cases = {
        "network": (lambda: denoiser.model_fn(x_t, 500), whole),
        "decode": (lambda: backend.decode(x_t), image),
    }
    for what, (run, expected) in cases.items():
        backend.set_memory_budget(1e-5)
        with pytest.raises(ModelSpecError, match=rf"sample of the {what} call at 4×8×8 ") as err:
            run()
        assert re.search(r"the smallest that fits is [0-9.]+ GiB$", str(err.value))
        backend.set_memory_budget(float(str(err.value).rsplit(" ", 2)[-2]))
        assert torch.equal(run(), expected)


def test_checkpointed_chunks_give_the_same_values_and_gradients():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 6))
    x = torch.randn(7, 6, requires_grad=True)

    def call(start, stop, part):
        return net(part)

    full = run_chunks(call, x, 7)
    (g_full,) = torch.autograd.grad(full, x, torch.ones_like(full))
    chunked = run_chunks(call, x, 2)
    assert chunked.grad_fn is not None
    (g_chunked,) = torch.autograd.grad(chunked, x, torch.ones_like(chunked))
    torch.testing.assert_close(chunked, full, rtol=0, atol=1e-6)
    torch.testing.assert_close(g_chunked, g_full, rtol=0, atol=1e-6)
