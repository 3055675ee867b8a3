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

``--model`` and ``--device`` are the model options' (:class:`ModelOptions`); ``--clip``,
``--clip-model``, ``--block``, ``--steps``, ``--iters`` and ``--guidance`` the style task's
(:class:`StyleConfig`: help and bounds, its defaults).

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
from layerdecomp.models.base import native_size
from layerdecomp.models.options import ModelOptions
from layerdecomp.options import configure
from layerdecomp.tasks.generate import generate
from layerdecomp.tasks.style import StyleConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries, to_tensor  # noqa: E402
from _config_args import add_config_arguments, parse_config  # noqa: E402

TAKEN = ("clip", "clip_model", "block", "steps", "iters", "guidance")
"""The style task's options the benchmark varies (the prompt and K = 0 / K are its own)."""


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
    parser.add_argument("--n", type=int, default=50, help="the first N held-out composites")
    parser.add_argument("--random-clip", action="store_true", help="random CLIP weights (smoke)")
    model_options = add_config_arguments(
        parser,
        ModelOptions,
        only=("model", "device"),
        defaults={"device": ("cpu", "the documented runs are mini on the CPU")},
    )
    task_options = add_config_arguments(parser, StyleConfig, only=TAKEN)
    args = parser.parse_args(argv)
    task = parse_config(parser, StyleConfig, args, task_options)
    placed = parse_config(parser, ModelOptions, args, model_options)
    quiet_libraries()
    backend = placed.load()
    if args.random_clip:
        visual, clip_label = random_clip(task.clip_model, backend.device), "random"
    else:
        visual, clip_label = load_clip(task.clip, task.clip_model, device=backend.device), task.clip
    width, height = native_size(backend)
    rows = []
    for index in range(args.n):
        reference = make_composite(index, "heldout", size=width)
        content = make_composite(index + 1, "heldout", size=width)
        constraint = ClipStyle(
            to_tensor(reference.image).to(backend.device),
            clip=visual,
            block=task.block,
            codec=backend,
        )
        row = {}
        with torch.no_grad():
            other = constraint.gram(to_tensor(content.image).to(backend.device))
            row["content_gram"] = (other - constraint.reference_gram).flatten(1).norm().item()
        for name, iters in (("unconstrained", 0), ("constrained", task.sampling.refine.iters)):
            config = configure(StyleConfig, task, {"prompt": content.caption, "iters": iters})
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
        f"model={placed.model} n={args.n} size={width}x{height} "
        f"clip={task.clip_model}:{clip_label} block={task.block} steps={task.sampling.steps} "
        f"K={task.sampling.refine.iters} w={task.guidance} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"{'image':<28} {'Gram dist':>10} {'relative':>9} {'seconds':>8} {'NFE':>5}")
    base = mean("unconstrained_gram")
    for key, label in (
        ("content", "other composite (no gen.)"),
        ("unconstrained", "prompt only (K=0)"),
        ("constrained", f"prompt + clip_style (K={task.sampling.refine.iters})"),
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
