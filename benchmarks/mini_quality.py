"""Quality of the embedded model on held-out composites: VAE, inpainting methods, prompt adherence.

One table over the first N held-out composites (ground truth known), run in batches of
``--batch`` composites (seconds are per composite, batch time over batch size):
* VAE reconstruction PSNR of the whole image;
* inpainting of the object's bounding box (§4.1): masked-region PSNR and SSIM, seconds and NFE for
  the inexact-Newton direction, the gradient (DPS) direction with the same K (per step Newton
  spends 1 + 2K forwards, the gradient 1 + K forwards and K backwards), and latent replacement
  (the known latents re-noised into x_t every step, the diffusers default for plain UNets; 1 NFE
  per step);
* prompt adherence: Newton inpainting under the true foreground prompt against a wrong one (the
  next composite's emoji), as the masked-region PSNR gap.

    python benchmarks/mini_quality.py --n 200

``--steps``, ``--iters`` and ``--guidance`` (the CFG weight w) are the task's
(:class:`InpaintConfig`: help and bounds); the guidance defaults to 2 here (see ``--help``).

The last line is ``newton_psnr=<dB> gradient_psnr=<dB> replace_psnr=<dB> prompt_gap_db=<dB>``;
with several models (``--model A --model B`` or ``--model A,B``: a table each, the same
composites) these lines are repeated at the end, each starting ``model=<name>``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import kornia
import numpy as np
import torch

import solvers
from layerdecomp.constraints import Mask
from layerdecomp.data.composites import make_composite
from layerdecomp.models import load_model
from layerdecomp.options import configure
from layerdecomp.tasks import InpaintConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    add_model_option,
    model_list,
    to_tensor,
)
from _config_args import add_config_arguments, parse_config  # noqa: E402

GUIDANCE = (2.0, "the true-against-wrong prompt row needs the prompt to weigh")
"""The benchmark's CFG weight w and why (the inpainting task's default is 0)."""


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """PSNR (dB) of images in [−1, 1] over the pixels where ``where`` (1, 1, H, W) is set."""
    region = where.expand_as(a).bool()
    mse = ((a - b)[region] / 2).pow(2).mean().item()
    return float("inf") if mse == 0 else -10 * np.log10(mse)


def ssim(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor) -> float:
    """Mean SSIM over the region (kornia's 7×7 SSIM map, images in [0, 1])."""
    score = kornia.metrics.ssim((a + 1) / 2, (b + 1) / 2, window_size=7)
    return score[where.expand_as(score).bool()].mean().item()


def replacement(denoiser, y, known, shape, steps, generator):
    """Latent replacement: x_t's known cells are the measurement re-noised to t, every step."""
    scheduler = denoiser.scheduler
    scheduler.set_timesteps(steps)
    x = torch.randn(shape, generator=generator)
    prediction = solvers.scheduler_prediction_type(scheduler)
    for t in scheduler.timesteps:
        noise = torch.randn(shape, generator=generator)
        x = known * solvers.add_noise(y, noise, t, scheduler) + (1 - known) * x
        with torch.no_grad():
            x0 = denoiser(x, t)
        x = scheduler.step(
            solvers.output_from_x0(x0, x, t, scheduler, prediction), t, x
        ).prev_sample
    return known * y + (1 - known) * x, len(scheduler.timesteps)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser, "one table each, on the same composites")
    parser.add_argument("--n", type=int, default=200, help="the first N held-out composites")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=25, help="composites per batched run")
    task_options = add_config_arguments(
        parser, InpaintConfig, only=("steps", "iters", "guidance"), defaults={"guidance": GUIDANCE}
    )
    args = parser.parse_args(argv)
    config = parse_config(parser, InpaintConfig, args, task_options)
    models = model_list(args.model)
    lines = [evaluate(model, args, config) for model in models]
    if len(models) > 1:
        print()
        for model, line in zip(models, lines, strict=True):
            print(f"model={Path(model).name} {line}")


def evaluate(model: str, args, config: InpaintConfig) -> str:
    """One model's table over the composites (``config``: steps, K and w); returns its summary
    line."""
    steps, iters = config.sampling.steps, config.sampling.refine.iters
    backend = load_model(model, device="cpu")
    rows: list[dict] = []
    for first in range(0, args.n, args.batch):
        indices = range(first, min(first + args.batch, args.n))
        samples = [make_composite(i, "heldout", size=args.size) for i in indices]
        others = [make_composite(i + 1, "heldout", size=args.size) for i in indices]
        image = torch.cat([to_tensor(s.image) for s in samples])
        hole = torch.zeros(len(samples), 1, args.size, args.size)
        for row, s in enumerate(samples):
            left, top, right, bottom = (int(v) for v in s.box)
            hole[
                row, :, max(top, 0) : min(bottom, args.size), max(left, 0) : min(right, args.size)
            ] = 1
        known = 1 - hole
        with torch.no_grad():
            recon = backend.decode(backend.encode(image)).clamp(-1, 1)
        batch = [
            {"vae_psnr": psnr(recon[i : i + 1], image[i : i + 1], torch.ones_like(hole[:1]))}
            for i in range(len(samples))
        ]
        constraint = Mask(image, known, codec=backend)
        shape = backend.latent_shape(len(samples), args.size, args.size)
        true = [s.caption for s in samples]
        wrong = [f"{o.caption_fg} on {s.caption_bg}" for s, o in zip(samples, others, strict=True)]
        results = {}
        for name, direction, prompts in (
            ("newton", "newton", true),
            ("gradient", "gradient", true),
            ("wrong", "newton", wrong),
        ):
            denoiser = backend.denoiser(prompts, "", config.guidance)
            start = time.perf_counter()
            generator = torch.Generator().manual_seed(first)
            x_t = solvers.initial_noise(denoiser.scheduler, shape, generator=generator)
            options = configure(InpaintConfig, config, {"direction": direction}).sampling
            out = solvers.sample(denoiser, constraint, x_t, options, generator=generator)
            with torch.no_grad():
                result = backend.decode(out.sample).clamp(-1, 1)
            results[name] = (result, time.perf_counter() - start, out.nfe)
        denoiser = backend.denoiser(true, "", config.guidance)
        start = time.perf_counter()
        latent, nfe = replacement(
            denoiser,
            constraint.y,
            constraint.mask,
            shape,
            steps,
            torch.Generator().manual_seed(first),
        )
        with torch.no_grad():
            result = backend.decode(latent).clamp(-1, 1)
        results["replace"] = (result, time.perf_counter() - start, nfe)
        for i, row in enumerate(batch):
            for name, (result, seconds, nfe) in results.items():
                one = (result[i : i + 1], image[i : i + 1], hole[i : i + 1])
                row[f"{name}_seconds"] = seconds / len(samples)  # per composite, batched
                row[f"{name}_nfe"] = nfe  # per composite (every row runs every step)
                row[f"{name}_psnr"] = psnr(*one)
                row[f"{name}_ssim"] = ssim(*one)
        rows.extend(batch)
        print(f"  {len(rows)}/{args.n}", flush=True)

    def mean(key):
        values = [r[key] for r in rows if np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    print(
        f"model={model} n={args.n} size={args.size} steps={steps} K={iters} "
        f"guidance={config.guidance} batch={args.batch} threads={torch.get_num_threads()}"
    )
    print(f"VAE reconstruction PSNR {mean('vae_psnr'):.2f} dB")
    print(f"{'bbox inpainting':<22} {'PSNR dB':>8} {'SSIM':>6} {'seconds':>8} {'NFE':>5}")
    for name, label in (
        ("newton", "newton (true prompt)"),
        ("gradient", "gradient (DPS)"),
        ("replace", "latent replacement"),
        ("wrong", "newton (wrong prompt)"),
    ):
        print(
            f"{label:<22} {mean(f'{name}_psnr'):>8.2f} {mean(f'{name}_ssim'):>6.3f} "
            f"{mean(f'{name}_seconds'):>8.2f} {mean(f'{name}_nfe'):>5.0f}"
        )
    gap = mean("newton_psnr") - mean("wrong_psnr")
    line = (
        f"newton_psnr={mean('newton_psnr'):.2f} gradient_psnr={mean('gradient_psnr'):.2f} "
        f"replace_psnr={mean('replace_psnr'):.2f} prompt_gap_db={gap:.2f}"
    )
    print(line)
    return line


if __name__ == "__main__":
    main()
