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

from layerdecomp.data.composites import make_composite  # noqa: E402
from layerdecomp.models import load_model  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--n", type=int, default=8, help="images (all of one size)")
    parser.add_argument("--size", type=int, default=64, help="side of the images in pixels")
    parser.add_argument("--batches", default="1,2,4", help="values of B, comma-separated")
    defaults = InpaintConfig().sampling
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--iters", type=int, default=defaults.refine.iters, help="K")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: its default)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    quiet_libraries()
    backend = load_model(args.model, device=args.device, dtype=args.dtype)
    config = configure(InpaintConfig, None, {"steps": args.steps, "iters": args.iters})
    pairs = composites(args.n, args.size)
    batches = [int(b) for b in args.batches.split(",")]
    warm_up = configure(InpaintConfig, None, {"steps": 1})
    run(backend, pairs[: max(batches)], max(batches), warm_up, args.seed)
    dtype, threads = str(backend.dtype).removeprefix("torch."), torch.get_num_threads()
    side = f"{args.size}x{args.size}"
    print(
        f"{args.model} on {backend.device} ({dtype}, {threads} threads): {args.n} images of "
        f"{side}, {args.steps} steps x K={args.iters}"
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
