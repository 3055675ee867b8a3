"""What a memory budget costs in time: a decomposition whole and in chunks, paired runs.

``python benchmarks/budget_time.py [--model mini] [--image examples/fox_stripes.png]
[--chunks 15 8] [--rounds 3]`` decomposes one image at the defaults (30 samples per network
call: 2 layers × 3 runs × 5 samples) without a budget, then under budgets that cut the network's
batch into chunks of the given sizes. The budgets come from the plan's own measured cost per row
(:class:`layerdecomp.models.memory.MemoryPlan`): the resident weights plus that many rows over
the margin. The runs alternate (none, each budget, none, …) so that the machine's load falls on
all alike; the table gives the median seconds, the ratio to the whole batch, and the largest
difference of the masks (the same seed: the results must agree to float rounding).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def budget_for(backend, rows: int) -> float:
    """The GiB that let the largest network call measured so far take ``rows`` rows."""
    from layerdecomp.models.memory import GIB, MARGIN

    plan = backend.memory
    network = [cost for key, cost in plan.costs.items() if key[0] != "decode"]
    cost = max(network, key=lambda c: c.per_row)
    in_use, _ = plan.headroom()
    return (in_use + (cost.peak(rows) + cost.per_row / 2) / MARGIN) / GIB


def main(argv: list[str] | None = None) -> dict:
    from layerdecomp.models import load_model
    from layerdecomp.tasks import decompose_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--image", type=Path, default=ROOT / "examples" / "fox_stripes.png")
    parser.add_argument("--chunks", type=int, nargs="+", default=[15, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--updates", type=int, default=None, help="Mask updates (default: the config's)."
    )
    args = parser.parse_args(argv)
    backend = load_model(args.model, device="cpu")
    image = Image.open(args.image).convert("RGB")
    options = {} if args.updates is None else {"updates": args.updates}

    def run():
        start = time.perf_counter()
        layers = decompose_image(
            backend,
            image,
            "a fox face",
            "purple stripes",
            seed=args.seed,
            disable=True,
            matting=False,
            **options,
        )
        return time.perf_counter() - start, layers.masks

    backend.set_memory_budget(1000.0)  # planned, unlimited in effect: measures the row costs
    run()
    budgets = {rows: budget_for(backend, rows) for rows in args.chunks}
    seconds = {None: [], **{rows: [] for rows in args.chunks}}
    masks = {}
    for _ in range(args.rounds):
        for rows in seconds:
            backend.set_memory_budget(None if rows is None else budgets[rows])
            spent, masks[rows] = run()
            seconds[rows].append(spent)
    whole = statistics.median(seconds[None])
    print("| network call | budget GiB | median s | ratio | max mask difference |")
    print("| --- | --- | --- | --- | --- |")
    summary = {}
    for rows, times in seconds.items():
        median = statistics.median(times)
        label = "whole batch" if rows is None else f"chunks of {rows} rows"
        budget = "none" if rows is None else f"{budgets[rows]:.4f}"
        diff = float((masks[rows] - masks[None]).abs().max())
        print(f"| {label} | {budget} | {median:.2f} | {median / whole:.3f} | {diff:.2e} |")
        summary[rows] = {"median": median, "ratio": median / whole, "difference": diff}
    return summary


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
