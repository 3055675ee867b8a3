"""×4 super-resolution quality on held-out composites: inexact Newton vs bicubic upsampling (§4.1).

For each of the first N held-out composites (``size``² pixels, the ground truth), the measurement
is ``y = Down_s(x) + σ_y·n`` (antialiased bicubic, σ_y = 0.05 as in the paper's tables). Methods:
bicubic upsampling of y (the baseline), and sampling under the ``downsample`` constraint with the
authors' setting (20 steps, K = 10, λ = 0.1 constant) using the decoder-backprop error, the
backprop-free VAE-Newton error, and (``--gradient``) the DPS gradient direction. Whole-image
PSNR/SSIM against the ground truth, the measurement RMSE ‖Down_s(x̂) − y‖, seconds and NFE.

    python benchmarks/superres_quality.py --model mini --n 100

``--model`` and ``--device`` are the model options' (:class:`ModelOptions`); ``--scale``,
``--steps``, ``--iters``, ``--lam`` and ``--perturbation`` the task's (:class:`SuperresConfig`:
help, bounds and the authors' defaults). ``--prompt-source`` (``empty`` or each composite's
``caption``) is the benchmark's: the task's ``--prompt`` is one text, refused here.

The last line is ``bicubic_psnr=<dB> backprop_psnr=<dB> vae_newton_psnr=<dB>`` (+ SSIMs).
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
from kornia.geometry.transform import resize

from layerdecomp.constraints.downsample import Downsample, downsample, measure
from layerdecomp.data.composites import make_composite
from layerdecomp.io import image_to_tensor
from layerdecomp.models.options import ModelOptions
from layerdecomp.options import configure
from layerdecomp.tasks.generate import generate
from layerdecomp.tasks.superres import SuperresConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries, to_tensor  # noqa: E402
from _config_args import add_config_arguments, add_refused, parse_config  # noqa: E402

TAKEN = ("scale", "steps", "iters", "lam", "perturbation")
"""The super-resolution task's options the benchmark varies (method and direction are its rows)."""


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR (dB) of images in [−1, 1]."""
    mse = ((a - b) / 2).pow(2).mean().item()
    return float("inf") if mse == 0 else -10 * np.log10(mse)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM (kornia, 7×7 window, images in [0, 1])."""
    return kornia.metrics.ssim((a + 1) / 2, (b + 1) / 2, window_size=7).mean().item()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="the first N held-out composites")
    parser.add_argument("--noise", type=float, default=0.05, help="σ_y of the measurement noise")
    parser.add_argument(
        "--prompt-source",
        choices=["empty", "caption"],
        default="empty",
        help="each run's prompt: none, or the composite's caption (default empty)",
    )
    add_refused(parser, "prompt", "one text for every image; here use --prompt-source caption")
    parser.add_argument("--gradient", action="store_true", help="add the DPS direction")
    parser.add_argument("--size", type=int, default=None, help="default: the model's native")
    model_options = add_config_arguments(
        parser,
        ModelOptions,
        only=("model", "device"),
        defaults={"device": ("cpu", "the documented runs are mini on the CPU")},
    )
    task_options = add_config_arguments(parser, SuperresConfig, only=TAKEN)
    args = parser.parse_args(argv)
    task = parse_config(parser, SuperresConfig, args, task_options)
    placed = parse_config(parser, ModelOptions, args, model_options)
    scale, sampling = task.scale, task.sampling
    quiet_libraries()
    backend = placed.load()
    if args.size is None:
        from layerdecomp.models.base import native_size

        args.size = native_size(backend)[0]
    methods = {"backprop": ("backprop", "newton"), "vae_newton": ("vae_newton", "newton")}
    if args.gradient:
        methods["gradient"] = ("backprop", "gradient")
    rows = []
    for index in range(args.n):
        sample = make_composite(index, "heldout", size=args.size)
        truth = to_tensor(sample.image)
        y = measure(truth, scale, args.noise, torch.Generator().manual_seed(index))
        start = time.perf_counter()
        bicubic = resize(y, (args.size, args.size), interpolation="bicubic").clamp(-1, 1)
        row = {
            "bicubic_seconds": time.perf_counter() - start,
            "bicubic_nfe": 0,
            "bicubic_psnr": psnr(bicubic, truth),
            "bicubic_ssim": ssim(bicubic, truth),
            "bicubic_yrmse": (downsample(bicubic, scale) - y).pow(2).mean().sqrt().item(),
        }
        prompt = sample.caption if args.prompt_source == "caption" else ""
        for name, (method, direction) in methods.items():
            constraint = Downsample(y.to(backend.device), scale, codec=backend, method=method)
            changes = {"prompt": prompt, "method": method, "direction": direction}
            config = configure(SuperresConfig, task, changes)
            start = time.perf_counter()
            out = generate(
                backend,
                constraint,
                (args.size, args.size),
                config,
                seed=index,
                disable_progress=True,
            )
            result = image_to_tensor(out.image)
            row[f"{name}_seconds"] = time.perf_counter() - start
            row[f"{name}_nfe"] = out.nfe
            row[f"{name}_psnr"] = psnr(result, truth)
            row[f"{name}_ssim"] = ssim(result, truth)
            row[f"{name}_yrmse"] = (downsample(result, scale) - y).pow(2).mean().sqrt().item()
        rows.append(row)
        if (index + 1) % 10 == 0:
            print(f"  {index + 1}/{args.n}", flush=True)

    def mean(key):
        values = [r[key] for r in rows if np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    print(
        f"model={placed.model} n={args.n} size={args.size} scale=×{scale} σ_y={args.noise} "
        f"steps={sampling.steps} K={sampling.refine.iters} λ={sampling.refine.lam} "
        f"perturbation={sampling.refine.perturbation} prompt={args.prompt_source} "
        f"threads={torch.get_num_threads()}"
    )
    print(f"{'method':<22} {'PSNR dB':>8} {'SSIM':>6} {'y-RMSE':>7} {'seconds':>8} {'NFE':>5}")
    labels = {
        "bicubic": "bicubic upsampling",
        "backprop": "newton, decoder bprop",
        "vae_newton": "newton, VAE-Newton",
        "gradient": "gradient (DPS)",
    }
    for name in ["bicubic", *methods]:
        print(
            f"{labels[name]:<22} {mean(f'{name}_psnr'):>8.2f} {mean(f'{name}_ssim'):>6.3f} "
            f"{mean(f'{name}_yrmse'):>7.4f} {mean(f'{name}_seconds'):>8.2f} "
            f"{mean(f'{name}_nfe'):>5.0f}"
        )
    print(
        " ".join(
            f"{name}_psnr={mean(f'{name}_psnr'):.2f} {name}_ssim={mean(f'{name}_ssim'):.3f}"
            for name in ["bicubic", *methods]
        )
    )


if __name__ == "__main__":
    main()
