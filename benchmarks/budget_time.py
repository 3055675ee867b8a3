"""What a memory budget costs in time: a decomposition whole and in chunks, paired runs.

``python benchmarks/budget_time.py [--model mini] [--image examples/fox_stripes.png]
[--chunks 15 8] [--rounds 3]`` decomposes one image at the defaults (30 samples per network
call: 2 layers × 3 runs × 5 samples) without a budget, then under budgets that cut the network's
batch into chunks of the given sizes. The budgets come from the plan's own measured cost per row
(:class:`layerdecomp.models.memory.MemoryPlan`): the resident weights plus that many rows over
the margin. The runs alternate (none, each budget, none, …) so that the machine's load falls on
all alike; the table gives the median seconds, the ratio to the whole batch, and the largest
difference of the masks (the same seed: the results must agree to float rounding).

``--network sd15 [--side 256] [--rows 30] [--chunks 15 8] [--rounds 3]`` times the layer
engine's batched calls themselves at a real network size: the SD 1.5 UNet, VAE and CLIP text
encoder architectures with random weights, built in code (``inpaint_speed.build``; no download;
``--network tiny``: their miniature, for the test), float32 on the CPU. ``rows`` latents of
``side / 8``² with two prompts (a layer's and the background's, half the rows each, as the engine
sends them) go through the denoising network (no guidance, no graph: one x̂0 estimate) and the
VAE decoder, whole and under budgets that make the plan take the given chunk sizes (each
call's own: measured on two rows first). The rounds alternate; the table gives per call and
chunk size the rows each call took, the median seconds, the ratio to whole and the largest
difference of the outputs (every other round runs in reverse order, so that a load that drifts
over the run falls on all alike; ``--calls network`` times the network alone). The decode
without a budget is already sliced at ``backend.decode_pixels`` (16 images at 256²): "whole" is
what the engine does by default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def budget_for(backend, rows: int, what: str = "network") -> float:
    """The GiB that let the largest ``what`` call measured so far take ``rows`` rows."""
    from layerdecomp.models.memory import GIB, MARGIN

    plan = backend.memory
    network = [cost for key, cost in plan.costs.items() if key[0] == what]
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
    parser.add_argument("--network", choices=["sd15", "tiny"], default=None)
    parser.add_argument("--side", type=int, default=256, help="--network: image side (px)")
    parser.add_argument("--rows", type=int, default=30, help="--network: rows of the batch")
    parser.add_argument(
        "--calls", nargs="+", choices=["network", "decode"], default=["network", "decode"]
    )
    args = parser.parse_args(argv)
    if args.network:
        return network_calls(args)
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


@torch.no_grad()
def network_calls(args) -> dict:
    """``--network``: the batched network call and the decode, whole and in chunks (see the
    module's help); returns ``{(call, rows): {median, ratio, difference, sizes}}``."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from inpaint_speed import build

    began = time.perf_counter()
    backend = build(args.network, torch.device("cpu"), torch.float32)
    side = args.side // backend.factor
    x = torch.randn(args.rows, 4, side, side, generator=torch.Generator().manual_seed(args.seed))
    denoiser = backend.denoiser(["a fox face", "purple stripes"])
    calls = {"network": lambda: denoiser.model_fn(x, 500), "decode": lambda: backend.decode(x)}
    calls = {what: calls[what] for what in args.calls}
    seen: list[int] = []
    for module in (backend.unet, backend.vae.post_quant_conv):  # the rows each call takes
        module.register_forward_pre_hook(lambda module, inputs: seen.append(len(inputs[0])))
    backend.set_memory_budget(1000.0)  # planned, all fits: measures each call's row cost
    for what in calls:  # two rows: each call's cost is measured on them
        denoiser.model_fn(x[:2], 500) if what == "network" else backend.decode(x[:2])
    budgets = {
        (what, rows): budget_for(backend, rows, what) for what in calls for rows in args.chunks
    }
    built = time.perf_counter() - began
    seconds = {(what, rows): [] for what in calls for rows in (None, *args.chunks)}
    outputs, sizes = {}, {}
    for index in range(args.rounds):  # every other round reversed: a drifting load cancels
        for what, rows in list(seconds)[:: -1 if index % 2 else 1]:
            backend.set_memory_budget(None if rows is None else budgets[(what, rows)])
            seen.clear()
            start = time.perf_counter()
            outputs[(what, rows)] = calls[what]()
            seconds[(what, rows)].append(time.perf_counter() - start)
            sizes[(what, rows)] = list(seen)
    print(f"# budget_time --network {args.network}: {args.rows} rows of {side}×{side} latents "
          f"({args.side}² images), float32 CPU, {torch.get_num_threads()} thread(s), "
          f"{args.rounds} round(s); build and cost measurement {built:.0f} s")  # fmt: skip
    print("| call | chunks | rows a call | budget GiB | median s | ratio | max difference |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    summary = {}
    for (what, rows), times in seconds.items():
        median, whole = statistics.median(times), statistics.median(seconds[(what, None)])
        diff = float((outputs[(what, rows)] - outputs[(what, None)]).abs().max())
        label = "whole" if rows is None else f"of {rows}"
        budget = "none" if rows is None else f"{budgets[(what, rows)]:.3f}"
        taken = "+".join(map(str, sizes[(what, rows)]))
        print(f"| {what} | {label} | {taken} | {budget} | {median:.2f} | {median / whole:.3f} "
              f"| {diff:.1e} |")  # fmt: skip
        summary[(what, rows)] = {"median": median, "ratio": median / whole, "difference": diff,
                                 "sizes": sizes[(what, rows)]}  # fmt: skip
    print(f"total {time.perf_counter() - began:.0f} s")
    return summary


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
