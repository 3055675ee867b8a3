"""CLIP style quality on held-out composites: Gram distance to the reference with and without the
constraint (the authors' code page).

For each of the first N held-out composites, composite i is the style reference and the prompt is
the caption of composite i+1 (other content). The same seed generates the prompt without the
constraint (K = 0: plain CFG sampling) and with ``clip_style`` (20 steps, K = 5, λ 0.5 → 0.1,
CFG w = 2). The score is the Frobenius distance ‖G(x̂) − G(ref)‖ of the Gram matrices of CLIP
ViT-B/16 block-2 tokens (the constraint's own residual on the final image); composite i+1 itself
gives the distance of unrelated content for scale.

    python benchmarks/style_quality.py --model mini --n 50 --clip openai
    python benchmarks/style_quality.py --model mini --n 5 --random-clip   # no weights: smoke test

The last line is ``unconstrained_gram=<d> constrained_gram=<d> ratio=<constrained/unconstrained>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from layerdecomp.constraints.clip_style import ClipStyle, load_clip
from layerdecomp.data.composites import make_composite
from layerdecomp.io import image_to_tensor
from layerdecomp.models import load_model
from layerdecomp.models.base import native_size
from layerdecomp.options import configure
from layerdecomp.tasks.config import SamplingConfig
from layerdecomp.tasks.generate import generate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries, to_tensor  # noqa: E402


def random_clip(model_name: str, device) -> torch.nn.Module:
    """An open_clip vision tower with random weights (a JSON config file is registered first)."""
    import open_clip

    if model_name.endswith(".json"):
        from pathlib import Path

        open_clip.add_model_config(model_name)
        model_name = Path(model_name).stem
    torch.manual_seed(0)
    model = open_clip.create_model(model_name, pretrained=None, device=device)
    return model.visual.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--n", type=int, default=50, help="the first N held-out composites")
    parser.add_argument("--clip", default="openai", help="open_clip tag, checkpoint or folder")
    parser.add_argument("--clip-model", default="ViT-B-16")
    parser.add_argument("--random-clip", action="store_true", help="random CLIP weights (smoke)")
    parser.add_argument("--block", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--guidance", type=float, default=2.0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    quiet_libraries()
    backend = load_model(args.model, device=args.device)
    if args.random_clip:
        visual, clip_label = random_clip(args.clip_model, backend.device), "random"
    else:
        visual, clip_label = load_clip(args.clip, args.clip_model, device=backend.device), args.clip
    width, height = native_size(backend)
    rows = []
    for index in range(args.n):
        reference = make_composite(index, "heldout", size=width)
        content = make_composite(index + 1, "heldout", size=width)
        constraint = ClipStyle(
            to_tensor(reference.image).to(backend.device),
            clip=visual,
            block=args.block,
            codec=backend,
        )
        row = {}
        with torch.no_grad():
            other = constraint.gram(to_tensor(content.image).to(backend.device))
            row["content_gram"] = (other - constraint.reference_gram).flatten(1).norm().item()
        for name, iters in (("unconstrained", 0), ("constrained", args.iters)):
            config = configure(
                SamplingConfig,
                None,
                {
                    "prompt": content.caption,
                    "guidance": args.guidance,
                    "steps": args.steps,
                    "iters": iters,
                    "lam": "linear:0.5:0.1",
                },
            )
            start = time.perf_counter()
            out = generate(
                backend,
                constraint,
                (width, height),
                config,
                seed=index,
                disable_progress=True,
            )
            row[f"{name}_seconds"] = time.perf_counter() - start
            row[f"{name}_nfe"] = out.nfe
            with torch.no_grad():
                final = constraint.gram(image_to_tensor(out.image).to(backend.device))
            row[f"{name}_gram"] = (final - constraint.reference_gram).flatten(1).norm().item()
        rows.append(row)
        if (index + 1) % 10 == 0:
            print(f"  {index + 1}/{args.n}", flush=True)

    def mean(key):
        values = [r[key] for r in rows if key in r and np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    print(
        f"model={args.model} n={args.n} size={width}x{height} clip={args.clip_model}:{clip_label} "
        f"block={args.block} steps={args.steps} K={args.iters} w={args.guidance} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"{'image':<28} {'Gram dist':>10} {'relative':>9} {'seconds':>8} {'NFE':>5}")
    base = mean("unconstrained_gram")
    for key, label in (
        ("content", "other composite (no gen.)"),
        ("unconstrained", "prompt only (K=0)"),
        ("constrained", f"prompt + clip_style (K={args.iters})"),
    ):
        seconds = mean(f"{key}_seconds") if key != "content" else 0.0
        nfe = mean(f"{key}_nfe") if key != "content" else 0
        print(
            f"{label:<28} {mean(f'{key}_gram'):>10.4g} {mean(f'{key}_gram') / base:>9.3f} "
            f"{seconds:>8.2f} {nfe:>5.0f}"
        )
    ratio = mean("constrained_gram") / base
    print(
        f"unconstrained_gram={base:.4g} constrained_gram={mean('constrained_gram'):.4g} "
        f"ratio={ratio:.3f}"
    )


if __name__ == "__main__":
    main()
