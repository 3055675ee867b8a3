"""Three layers at once against the two-layer engine run twice, on two-object composites (#14).

Each held-out pair (``layerdecomp.data.pairs``: a front and a back emoji over a texture, the true
visible shares known) is decomposed two ways, with the same model, seed and defaults:

- **joint**: one run of the engine with three prompts, front, back, background;
- **recursive**: the two-layer engine with the front object's prompt against "<back> on
  <background>", then again on that run's background layer with the back object against the
  background; the shares combine as m₁, (1 − m₁)·m₂, (1 − m₁)·(1 − m₂).

Both are scored as the engine leaves them and after matting of the edges (``layers.matte``, the
default of ``decompose``; it takes well under a second here, so its seconds are not split out).
Metrics per layer: IoU of the pixels the layer holds the largest share of against the true
visible layer (largest true share), the mean absolute share error, and per method the
recomposition error (max |Σ m·x − x| in 8-bit levels), NFE and seconds per image.

    python benchmarks/decompose_layers.py --n 12
    python benchmarks/decompose_quality.py --layers 3 --n 12    # the same table

The last line is ``joint_iou=<mean over layers> recursive_iou=<…> joint_s=<…> recursive_s=<…>``;
with several models (``--model A --model B`` or ``--model A,B``: one table each) one such line
per model, each starting ``model=<name>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from layerdecomp.data.pairs import make_pair
from layerdecomp.io import image_to_tensor
from layerdecomp.layers import DecomposeConfig, Layers, matte
from layerdecomp.models import load_model
from layerdecomp.tasks.decompose import decompose_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_model_option,
    model_list,
    quiet_libraries,
)
from _config_args import add_config_arguments, parse_config  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402

NAMES = ("front", "back", "background")


def recursive(backend, image: Image.Image, pair, seed: int, config: DecomposeConfig) -> Layers:
    """The two-layer engine twice: the front object off the rest, then the back object off the
    background that run left; combined into one three-layer result."""
    front, back = pair.captions_fg
    first = decompose_image(
        backend,
        image,
        front,
        f"{back} on {pair.caption_bg}",
        seed=seed,
        config=config,
        disable=True,
    )
    rest = _to_pil(first.background)
    second = decompose_image(
        backend, rest, back, pair.caption_bg, seed=seed, config=config, disable=True
    )
    m1, m2 = first.mask, second.mask
    masks = torch.cat([m1, (1 - m1) * m2, (1 - m1) * (1 - m2)])
    images = torch.cat([first.foreground, second.foreground, second.background])
    return Layers(
        images,
        masks,
        prompts=[front, back, pair.caption_bg],
        nfe=first.nfe + second.nfe,
        seconds=first.seconds + second.seconds,
        trace={"work_size": first.trace["work_size"]},
    )


def _to_pil(tensor: torch.Tensor) -> Image.Image:
    array = ((tensor[0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy()
    return Image.fromarray(array)


def score(layers: Layers, pair, image: torch.Tensor) -> dict[str, float]:
    shares = layers.masks[:, 0].cpu().numpy()
    truth = pair.visible
    owner, true_owner = shares.argmax(0), truth.argmax(0)
    row: dict[str, float] = {}
    for index, name in enumerate(NAMES):
        pred, real = owner == index, true_owner == index
        union = (pred | real).sum()
        row[f"{name}_iou"] = float((pred & real).sum() / union) if union else 1.0
        row[f"{name}_mae"] = float(np.abs(shares[index] - truth[index]).mean())
    row["iou"] = statistics.mean(row[f"{n}_iou"] for n in NAMES)
    row["recomposition"] = float((layers.recomposition - image).abs().max() * 127.5)
    row["nfe"] = float(layers.nfe)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser, "one table each, side by side at the end")
    parser.add_argument("--n", type=int, default=12, help="the first N held-out pairs")
    parser.add_argument("--split", default="heldout", choices=["heldout", "novel"])
    parser.add_argument("--size", type=int, default=64)
    placing = add_config_arguments(parser, ModelOptions, only=("device",))
    args = parser.parse_args(argv)
    device = parse_config(parser, ModelOptions, args, placing).device
    quiet_libraries()
    models = model_list(args.model)
    lines = []
    for model in models:
        line = evaluate(load_model(model, device=device), model, args)
        lines.append((f"model={Path(model).name} " if len(models) > 1 else "") + line)
    if len(models) > 1:
        print()
    print("\n".join(lines))


def evaluate(backend, model: str, args) -> str:
    """One model's table over the pairs; returns its summary line."""
    config = DecomposeConfig()
    methods = ("joint", "joint+matting", "recursive", "recursive+matting")
    rows: dict[str, list[dict[str, float]]] = {method: [] for method in methods}
    for index in range(args.n):
        pair = make_pair(index, args.split, size=args.size)
        image = Image.fromarray(pair.image)
        pixels = image_to_tensor(image)
        start = time.perf_counter()
        joint = decompose_image(
            backend,
            image,
            [*pair.captions_fg, pair.caption_bg],
            seed=index,
            config=config,
            disable=True,
            matting=False,
        )
        middle = time.perf_counter()
        both = recursive(backend, image, pair, index, config)
        end = time.perf_counter()
        for method, layers, seconds in (
            ("joint", joint, middle - start),
            ("recursive", both, end - middle),
        ):
            rows[method].append({**score(layers, pair, pixels), "seconds": seconds})
            matted = matte(pixels, layers)
            rows[f"{method}+matting"].append({**score(matted, pair, pixels), "seconds": seconds})
        print(
            f"  {index + 1}/{args.n}: joint {rows['joint'][-1]['iou']:.3f} "
            f"recursive {rows['recursive'][-1]['iou']:.3f}",
            flush=True,
        )

    def mean(method: str, key: str) -> float:
        return statistics.mean(r[key] for r in rows[method])

    print(f"model={model} split={args.split} n={args.n} size={args.size} defaults")
    header = " ".join(f"{n + ' IoU':>14}" for n in NAMES)
    print(
        f"{'method':<18} {header} {'mean IoU':>9} {'share MAE':>10} {'recomp':>7} {'NFE':>6} "
        f"{'s/image':>8}"
    )
    for method in rows:
        ious = " ".join(f"{mean(method, n + '_iou'):>14.3f}" for n in NAMES)
        mae = statistics.mean(mean(method, n + "_mae") for n in NAMES)
        print(
            f"{method:<18} {ious} {mean(method, 'iou'):>9.3f} {mae:>10.3f} "
            f"{mean(method, 'recomposition'):>7.2f} {mean(method, 'nfe'):>6.0f} "
            f"{mean(method, 'seconds'):>8.2f}"
        )
    return (
        f"joint_iou={mean('joint', 'iou'):.3f} recursive_iou={mean('recursive', 'iou'):.3f} "
        f"joint_matting_iou={mean('joint+matting', 'iou'):.3f} "
        f"joint_s={mean('joint', 'seconds'):.2f} recursive_s={mean('recursive', 'seconds'):.2f}"
    )


if __name__ == "__main__":
    main()
