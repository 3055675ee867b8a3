"""Inpainting throughput with images batched together (``layerdecomp inpaint --batch-images B``).

N held-out composites of one size (mini's native 64×64 by default), each with its emoji's
bounding box to fill, are inpainted with the paper's setting (20 steps, K = 5, no prompt) by
:func:`layerdecomp.tasks.inpaint.inpaint_batch` in batches of B, the model loaded once and warmed
up first; for each B the table gives the wall time, images per second, the speed-up over the
first B, and how far the filled pixels are from the first B's results (0–255 levels, the kept
pixels are equal). A batch changes only the network's rounding, but 20 × 5 Newton iterations
amplify it: on mini a change of 1e-6 in the starting noise moves some pixels as far.

    python benchmarks/batch_images.py                       # mini on the CPU, B = 1, 2, 4
    python benchmarks/batch_images.py --device cuda --batches 1,2,4,8,16

``--model``, ``--device``, ``--dtype``, ``--steps`` and ``--iters`` are the model's and the
task's options (:class:`ModelOptions`, :class:`InpaintConfig`: their help, choices and bounds).

The last line is ``images_per_s=<B>:<rate>,... speedup=<rate at the last B / at the first>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries  # noqa: E402
from _config_args import add_config_arguments, parse_config  # noqa: E402

from layerdecomp.data.composites import make_composite  # noqa: E402
from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.options import configure  # noqa: E402
from layerdecomp.tasks.inpaint import InpaintConfig, inpaint_batch  # noqa: E402


def composites(count: int, size: int) -> list[tuple[Image.Image, Image.Image]]:
    """(image, mask) of the first ``count`` held-out composites: fill the emoji's box."""
    pairs = []
    for index in range(count):
        sample = make_composite(index, "heldout", size=size)
        left, top, right, bottom = (int(round(v)) for v in sample.box)
        mask = Image.new("L", (size, size), 0)
        mask.paste(255, (max(0, left), max(0, top), min(size, right), min(size, bottom)))
        pairs.append((Image.fromarray(sample.image), mask))
    return pairs


def run(backend, pairs, batch: int, config: InpaintConfig, seed: int) -> tuple[float, list]:
    """Seconds to inpaint every pair in batches of ``batch``, and the results."""
    images = []
    start = time.perf_counter()
    for k in range(0, len(pairs), batch):
        chunk = pairs[k : k + batch]
        outs = inpaint_batch(
            backend,
            [image for image, _ in chunk],
            [mask for _, mask in chunk],
            config=config,
            seed=seed,
            disable_progress=True,
        )
        images += [np.asarray(out.image, dtype=np.int16) for out in outs]
    if backend.device.type == "cuda":
        torch.cuda.synchronize(backend.device)
    return time.perf_counter() - start, images


CPU_FIRST = "the table it was written for is mini on the CPU"
"""Why ``--device`` is ``cpu`` here (the model options' default is ``auto``)."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8, help="images (all of one size)")
    parser.add_argument("--size", type=int, default=64, help="side of the images in pixels")
    parser.add_argument("--batches", default="1,2,4", help="values of B, comma-separated")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--seed", type=int, default=0)
    model_options = add_config_arguments(
        parser,
        ModelOptions,
        only=("model", "device", "dtype"),
        defaults={"device": ("cpu", CPU_FIRST)},
    )
    task_options = add_config_arguments(parser, InpaintConfig, only=("steps", "iters"))
    args = parser.parse_args(argv)
    placed = parse_config(parser, ModelOptions, args, model_options)
    config = parse_config(parser, InpaintConfig, args, task_options)
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_libraries()
    backend = placed.load()
    pairs = composites(args.n, args.size)
    batches = [int(b) for b in args.batches.split(",")]
    warm_up = configure(InpaintConfig, None, {"steps": 1})
    run(backend, pairs[: max(batches)], max(batches), warm_up, args.seed)
    dtype, threads = str(backend.dtype).removeprefix("torch."), torch.get_num_threads()
    side = f"{args.size}x{args.size}"
    print(
        f"{placed.model} on {backend.device} ({dtype}, {threads} threads): {args.n} images of "
        f"{side}, {config.sampling.steps} steps x K={config.sampling.refine.iters}"
    )
    print("| B | seconds | images/s | speed-up | hole's difference from B=1, max / mean |")
    print("| --- | --- | --- | --- | --- |", flush=True)
    rates, reference = {}, None
    for batch in batches:
        seconds, images = run(backend, pairs, batch, config, args.seed)
        reference = images if reference is None else reference
        hole = np.concatenate(
            [
                np.abs(a - b)[np.asarray(m) > 0].ravel()
                for a, b, (_, m) in zip(images, reference, pairs, strict=True)
            ]
        )
        rates[batch] = args.n / seconds
        speedup = rates[batch] / rates[batches[0]]
        row = f"| {batch} | {seconds:.2f} | {rates[batch]:.3f} | {speedup:.2f} | "
        row += f"{hole.max()} / {hole.mean():.2f} |"
        print(row, flush=True)
    listed = ",".join(f"{batch}:{rate:.3f}" for batch, rate in rates.items())
    print(f"images_per_s={listed} speedup={rates[batches[-1]] / rates[batches[0]]:.2f}")


if __name__ == "__main__":
    main()
