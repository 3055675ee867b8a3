"""Prompt adherence of a text-to-image model, scored by the judge (emoji, texture family, colour).

First the judge's ceiling: its accuracy on clean held-out ground-truth composites (no model can
score higher), and on the same composites encoded and decoded by the model's VAE (what the decoder
alone costs). Then the model generates one image per caption of the first N held-out composites
("a cat face on blue stripes"; diffusers pipeline, fixed seeds ``seed + index``) and the judge
compares what it sees with what the caption asked for. With ``--breakdown`` the same is done with
the foreground caption alone ("a cat face": emoji only) and the background caption alone
("blue stripes": texture and colour only).

    python benchmarks/judge_generations.py --model mini --n 64 --steps 20 --guidance-scale 5

``--guidance-scale`` is diffusers' ``guidance_scale`` s, ``s·ε_c − (s − 1)·ε_u``: the tasks'
CFG weight ``--guidance`` w is s − 1 (``--guidance-scale 5`` is ``--guidance 4``); ``--guidance``
is refused here, naming it. ``--steps`` is the sampler's (:class:`ConstraintConfig`'s help and
bounds).

Several models (``--model A --model B`` or ``--model A,B``) are judged one after another on the
same captions and seeds, and their judge lines repeated at the end, each starting ``model=``.

The last line is ``judge: colour=<x> texture=<y> emoji=<z>`` (the "both" captions).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from layerdecomp.data.composites import make_composite
from layerdecomp.data.emoji import TRAIN_EMOJI
from layerdecomp.errors import LayerdecompError
from layerdecomp.judge import ATTRIBUTES, LABELS, Judge
from layerdecomp.models import load_pipeline, resolve_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_model_option,
    model_list,
    quiet_libraries,
)
from _config_args import add_config_arguments, add_refused, parse_config  # noqa: E402

from layerdecomp.tasks import ConstraintConfig  # noqa: E402

CAPTIONS = {
    "both": ("caption", ATTRIBUTES),
    "fg only": ("caption_fg", ("emoji",)),
    "bg only": ("caption_bg", ("texture", "colour")),
}
"""Caption kind → the composite's caption field and the attributes it asks for."""


def generate(pipe, prompts, seeds, steps, guidance_scale, size, batch):
    """uint8 ``(N, H, W, 3)`` images, one per prompt, generator ``seeds[i]`` for prompt ``i``."""
    images = []
    for first in range(0, len(prompts), batch):
        rows = slice(first, first + batch)
        out = pipe(
            prompt=prompts[rows],
            num_inference_steps=steps,
            guidance_scale=guidance_scale,
            generator=[torch.Generator().manual_seed(s) for s in seeds[rows]],
            height=size,
            width=size,
            output_type="np",
        ).images
        if not np.isfinite(out).all():
            raise LayerdecompError("the model generated NaN or Inf pixels (try float32)")
        images.append((np.clip(out, 0, 1) * 255).round().astype(np.uint8))
        print(f"  {min(first + batch, len(prompts))}/{len(prompts)}", flush=True)
    return np.concatenate(images)


def vae_round_trip(vae, images, batch=64):
    """uint8 images encoded and decoded by the model's VAE (its mode: no sampling noise)."""
    out = []
    for first in range(0, len(images), batch):
        x = torch.from_numpy(images[first : first + batch]).permute(0, 3, 1, 2).float()
        with torch.no_grad():
            latent = vae.encode(x / 127.5 - 1).latent_dist.mode()
            y = vae.decode(latent).sample
        out.append(((y.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def row(label, n, accuracy):
    cells = [f"{accuracy[k]:>8.3f}" if k in accuracy else f"{'-':>8}" for k in reversed(ATTRIBUTES)]
    return f"{label:<24} {n:>5} " + " ".join(cells)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser, "each judged on the same captions and seeds")
    parser.add_argument("--n", type=int, default=64, help="the first N held-out captions")
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=5.0,
        help="diffusers' guidance_scale s = 1 + the tasks' CFG weight w (default 5.0)",
    )
    add_refused(
        parser,
        "guidance",
        "the tasks' CFG weight w; this benchmark takes diffusers' --guidance-scale (w + 1)",
    )
    parser.add_argument("--seed", type=int, default=0, help="image i uses generator seed + i")
    parser.add_argument("--size", type=int, default=64, help="generated side in pixels")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--ceiling-n", type=int, default=512, help="held-out composites")
    parser.add_argument("--judge", default=None, help="a judge folder (default: the shipped one)")
    parser.add_argument("--breakdown", action="store_true", help="also fg-only, bg-only captions")
    sampler_options = add_config_arguments(parser, ConstraintConfig, only=("steps",))
    args = parser.parse_args(argv)
    args.steps = parse_config(parser, ConstraintConfig, args, sampler_options).sampling.steps
    if min(args.n, args.batch, args.ceiling_n) < 1:
        parser.error("--n, --batch and --ceiling-n must be >= 1")
    try:
        run(args)
    except (LayerdecompError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 1))


def run(args: argparse.Namespace) -> None:
    judge = Judge.load(args.judge)
    print(f"{'':<24} {'n':>5} {'colour':>8} {'texture':>8} {'emoji':>8}")
    truth = [make_composite(i, "heldout") for i in range(args.ceiling_n)]
    images = np.stack([c.image for c in truth])
    labels = {k: [getattr(c, k) for c in truth] for k in ATTRIBUTES}
    ceiling = judge.accuracy(images, labels)
    print(row("ground truth (ceiling)", args.ceiling_n, ceiling))
    chance = {"emoji": 1 / len(TRAIN_EMOJI)} | {k: 1 / len(LABELS[k]) for k in ATTRIBUTES[1:]}
    print(row("chance", "-", chance))

    quiet_libraries()
    models = model_list(args.model)
    lines = [judge_model(model, args, judge, images, labels) for model in models]
    if len(models) > 1:
        print()
        for model, line in zip(models, lines, strict=True):
            print(f"model={Path(model).name} {line}")


def judge_model(model: str, args: argparse.Namespace, judge, images, labels) -> str:
    """One model's rows (its VAE round trip and its generations); returns its judge line."""
    started = time.perf_counter()
    pipe = load_pipeline(resolve_spec(model), dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    if getattr(pipe, "vae", None) is not None:  # what the decoder alone costs the judge
        decoded = vae_round_trip(pipe.vae, images)
        print(row("ground truth via the VAE", args.ceiling_n, judge.accuracy(decoded, labels)))
    samples = [make_composite(i, "heldout") for i in range(args.n)]  # labels and captions
    seeds = [args.seed + i for i in range(args.n)]
    kinds = list(CAPTIONS) if args.breakdown else ["both"]
    results = {}
    for kind in kinds:
        field, attributes = CAPTIONS[kind]
        prompts = [getattr(s, field) for s in samples]
        generated = generate(
            pipe, prompts, seeds, args.steps, args.guidance_scale, args.size, args.batch
        )
        wanted = {k: [getattr(s, k) for s in samples] for k in attributes}
        results[kind] = judge.accuracy(generated, wanted)
    seconds = time.perf_counter() - started
    print(
        f"model={model} n={args.n} steps={args.steps} guidance_scale={args.guidance_scale} "
        f"seed={args.seed} size={args.size} threads={torch.get_num_threads()} "
        f"({seconds:.0f} s incl. load)"
    )
    for kind in kinds:
        print(row(f"generated, {kind}", args.n, results[kind]))
    line = "judge: " + " ".join(f"{k}={results['both'][k]:.3f}" for k in reversed(ATTRIBUTES))
    print(line)
    return line


if __name__ == "__main__":
    main()
