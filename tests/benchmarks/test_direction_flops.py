"""``benchmarks/direction_flops.py``: exact counts on a linear stack, and the table's rows."""

import runpy
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "direction_flops.py"
bench = runpy.run_path(str(SCRIPT), run_name="direction_flops")


def test_a_linear_stack_costs_one_forward_per_backward_without_weight_gradients():
    # forward: 2·B·(8·16 + 16·4) FLOPs; the input's gradient repeats every product once, the
    # weights' gradients once more: gradient/Newton = 2F/2F = 1 and 3F/2F = 1.5 exactly
    network = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    x = torch.randn(3, 8)
    counts = bench["direction_flops"](network, lambda n, v: n(v), x)
    forward = 2 * 3 * (8 * 16 + 16 * 4)
    assert counts == {"forward": forward, "input": 2 * forward, "weights": 3 * forward}
    assert not any(p.requires_grad for p in network.parameters())


def test_the_tiny_unet_row(capsys):
    bench["main"](["--models", "tiny"])
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| tiny")]
    cells = [c.strip() for c in row[0].strip("|").split("|")]
    input_only, with_weights = float(cells[5]), float(cells[6])
    assert 0.9 < input_only < 1.2 and 1.4 < with_weights < 1.6
