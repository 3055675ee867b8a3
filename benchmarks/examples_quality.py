"""The README's examples against their truth: IoU of each example's decomposition per seed.

``python benchmarks/examples_quality.py [--seeds 0 1 2 3 4] [--model mini]`` decomposes every
example of ``examples/examples.json`` (their prompts, the defaults of ``decompose``) at each seed,
and scores each foreground layer's mask against the truth ``examples/make_examples.py`` wrote
(``examples/truth/``): the IoU of the masks thresholded at 0.5, and the soft IoU of the alphas
(:mod:`layerdecomp.layers.metrics`). Prints a table (one row per example, one column per seed)
and a last line with the mean and the share of runs below 0.9. The engine's options come from
their one declaration (``--updates 6`` and the like, as on the command line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _layer_report import iou  # noqa: E402


def truth_alphas(record: dict) -> np.ndarray:
    """(L − 1, H, W) the true visible share of each object, front first."""
    layers = [np.asarray(Image.open(EXAMPLES / name)) for name in record["truth"]["layers"]]
    alphas = [layer[..., 3].astype(np.float64) / 255 for layer in layers]
    left, shares = np.ones_like(alphas[0]), []
    for alpha in alphas:  # front first: each object shows where those in front leave room
        shares.append(alpha * left)
        left = left * (1 - alpha)
    return np.stack(shares)


def score(layers, record: dict) -> tuple[float, float]:
    """(IoU, soft IoU) averaged over the foreground layers."""
    from layerdecomp.layers.metrics import soft_iou

    truth = truth_alphas(record)
    masks = layers.masks[:-1, 0].double().cpu().numpy()
    hard = [iou(m > 0.5, t > 0.5) for m, t in zip(masks, truth, strict=True)]
    soft = [
        float(soft_iou(torch.from_numpy(m), torch.from_numpy(t)))
        for m, t in zip(masks, truth, strict=True)
    ]
    return float(np.mean(hard)), float(np.mean(soft))


def main(argv: list[str] | None = None) -> dict:
    from _config_args import add_config_arguments, parse_config

    from layerdecomp.layers import DecomposeConfig
    from layerdecomp.models import load_model
    from layerdecomp.tasks import decompose_image

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--only", nargs="*", default=None, help="Example file names to run.")
    parser.add_argument("--rows", type=Path, default=None, help="Write every score as JSON.")
    names = add_config_arguments(parser, DecomposeConfig)
    args = parser.parse_args(argv)
    config = parse_config(parser, DecomposeConfig, args, names)
    backend = load_model(args.model, device="cpu")
    records = json.loads((EXAMPLES / "examples.json").read_text())
    if args.only:
        records = [r for r in records if r["image"] in args.only]
    rows, started = [], time.perf_counter()
    for record in records:
        image = Image.open(EXAMPLES / record["image"]).convert("RGB")
        prompts = [*(record["fg"] if isinstance(record["fg"], list) else [record["fg"]])]
        for seed in args.seeds:
            layers = decompose_image(
                backend, image, [*prompts, record["bg"]], seed=seed, config=config, disable=True
            )
            hard, soft = score(layers, record)
            rows.append({"image": record["image"], "seed": seed, "iou": hard, "soft_iou": soft})
    names = list(dict.fromkeys(r["image"] for r in rows))
    print("| example | " + " | ".join(f"seed {s}" for s in args.seeds) + " |")
    print("| --- | " + " | ".join("---" for _ in args.seeds) + " |")
    for name in names:
        cells = [f"{r['iou']:.3f}" for r in rows if r["image"] == name]
        print(f"| {name} | " + " | ".join(cells) + " |")
    ious = np.array([r["iou"] for r in rows])
    summary = {
        "mean_iou": float(ious.mean()),
        "mean_soft_iou": float(np.mean([r["soft_iou"] for r in rows])),
        "below_0.9": float((ious < 0.9).mean()),
        "runs": len(rows),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )
    if args.rows:
        args.rows.write_text(json.dumps({"rows": rows, "summary": summary}, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
