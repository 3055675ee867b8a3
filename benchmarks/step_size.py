"""Step-size convergence test for the Newton direction: masked MSE against t (issue #17).

Bounding-box inpainting of held-out composites on ``mini`` (20 DDIM steps, K = 5 Newton iterations
per step, as ``mini_quality.py``), with the step-size rule varied:

* ``dynamic``: ``λ = 0.5 / max|h|`` on the raw ``h = J·e`` (x_t moves 0.5 in max-norm);
* ``c/μ²`` for c = 0.5, 1.5, 3: ``λ = c / μ(t)²`` on the raw h, with μ(t) the largest
  |eigenvalue| of J at t from Arnoldi (measured once per timestep of the schedule on the first
  composite's diffused latent; x̂0 then moves by c·e along J's top eigenvector, so c < 2 converges
  there and c = 3 overshoots);
* ``linear``: ``λ_k = 0.5 → 0.1`` on ``h / max|h|`` (the default), and the gradient direction with
  the same schedule as the reference.

The known-region MSE of x̂0 (model space) after each step's K iterations is recorded against t;
the table gives it at t ≈ 900 / 500 / 100 and at the end, with the hole's PSNR (nan for a run
that diverged: its final MSE above its first). Plot:
``docs/step_size.png``.

    python benchmarks/step_size.py --n 8

``--model`` is the model options' (:class:`ModelOptions`; loaded on the CPU in float32),
``--steps``, ``--iters`` and ``--guidance`` (w, 2 here) the task's (:class:`InpaintConfig`).

The last line is ``best=<rule> final_mse=<its final masked MSE> linear_mse=<the default's>``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

import solvers

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries, to_tensor  # noqa: E402
from _config_args import add_config_arguments, parse_config  # noqa: E402
from mini_quality import GUIDANCE, psnr  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.tasks import InpaintConfig  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"


def heldout_batch(backend, first: int, n: int, size: int = 64):
    """Held-out composites ``first … first+n−1`` with their bounding box as the hole.

    Returns:
        (image (n, 3, H, W), hole (n, 1, H, W), Mask constraint, captions).
    """
    from layerdecomp.constraints import Mask
    from layerdecomp.data.composites import make_composite

    samples = [make_composite(i, "heldout", size=size) for i in range(first, first + n)]
    image = torch.cat([to_tensor(s.image) for s in samples])
    hole = torch.zeros(n, 1, size, size)
    for row, s in enumerate(samples):
        left, top, right, bottom = (int(v) for v in s.box)
        hole[row, :, max(top, 0) : min(bottom, size), max(left, 0) : min(right, size)] = 1
    constraint = Mask(image, 1 - hole, codec=backend)
    return image, hole, constraint, [s.caption for s in samples]


def top_eigenvalues(denoiser, latent, timesteps, size: int = 10) -> dict[int, float]:
    """μ(t): Arnoldi's largest |eigenvalue| of J at each t, on ``latent`` diffused with seed 0."""
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    mu = {}
    for t in timesteps:
        x_t = solvers.add_noise(latent, noise, t, denoiser.scheduler)
        products = solvers.JacobianProducts(denoiser, x_t, t)
        start = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(1))
        mu[int(t)] = solvers.arnoldi(products.jvp, start, size).top
    return mu


def sample_with_rule(denoiser, constraint, shape, *, steps, iters, rule, mu, direction, seed):
    """The constrained DDIM sampler of Algorithm 1 with a per-step λ rule.

    ``rule``: ``"linear"`` (normalised h), ``"dynamic"`` or a float c (``λ = c/μ(t)²``, raw h).
    Returns (final latent, per-step known-region MSE (steps, B), timesteps). A run that
    diverges to NaN/Inf is stopped and its remaining MSEs are ``inf``.
    """
    scheduler = denoiser.scheduler
    scheduler.set_timesteps(steps)
    prediction = solvers.scheduler_prediction_type(scheduler)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator)
    lams = solvers.Schedule("linear", 0.5, 0.1).sizes(iters)
    direction_fn = solvers.get_direction(direction)
    mses = torch.full((steps, shape[0]), float("inf"))
    try:
        for i, t in enumerate(scheduler.timesteps):
            with torch.no_grad():
                x0 = denoiser(x, t)
            for k in range(iters):
                e, _ = constraint.error(x0)
                raw = direction_fn(denoiser, x, t, e, x0=x0, normalize=False).h
                if rule == "linear":
                    x = x + lams[k] * raw / raw.abs().flatten(1).amax(1).view(-1, 1, 1, 1)
                elif rule == "dynamic":
                    x = x + solvers.dynamic_step(raw, 0.5) * raw
                else:
                    x = x + float(rule) / mu[int(t)] ** 2 * raw
                with torch.no_grad():
                    x0 = solvers.errors.check_finite(denoiser(x, t), "x̂0", t)
            _, residual = constraint.error(x0)
            mses[i] = residual.pow(2)
            output = solvers.output_from_x0(x0, x, t, scheduler, prediction)
            x = scheduler.step(output, t, x).prev_sample
    except solvers.NonFiniteError:
        return None, mses, [int(t) for t in scheduler.timesteps]
    return x, mses, [int(t) for t in scheduler.timesteps]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="held-out composites (one batch)")
    parser.add_argument("--first", type=int, default=0, help="index of the first composite")
    parser.add_argument("--krylov", type=int, default=10, help="Arnoldi size for μ(t)")
    parser.add_argument("--out", type=Path, default=DOCS / "step_size.png")
    model_options = add_config_arguments(parser, ModelOptions, only=("model",))
    task_options = add_config_arguments(
        parser,
        InpaintConfig,
        only=("steps", "iters", "guidance"),
        defaults={"guidance": (GUIDANCE[0], "as mini_quality.py, whose setting this varies")},
    )
    args = parser.parse_args(argv)
    config = parse_config(parser, InpaintConfig, args, task_options)
    cpu = {"device": "cpu", "dtype": "float32"}
    model = parse_config(parser, ModelOptions, args, model_options, cpu)
    steps, iters = config.sampling.steps, config.sampling.refine.iters
    if args.n < 1 or iters < 1 or args.krylov < 1 or args.first < 0:
        parser.error("--n, --iters and --krylov must be positive, --first ≥ 0")
    if not args.out.parent.is_dir():
        parser.error(f"--out: directory {args.out.parent} does not exist")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        parser.error("matplotlib is needed for the plot: pip install matplotlib")
    quiet_libraries()
    backend = model.load()
    image, hole, constraint, captions = heldout_batch(backend, args.first, args.n)
    denoiser = backend.denoiser(captions, "", config.guidance)
    shape = backend.latent_shape(args.n, 64, 64)
    start = time.perf_counter()
    first = backend.denoiser(captions[0], "", config.guidance)
    with torch.no_grad():
        latent = backend.encode(image[:1])
    first.scheduler.set_timesteps(steps)
    mu = top_eigenvalues(first, latent, first.scheduler.timesteps, args.krylov)
    print(
        f"model={model.model} composites {args.first}–{args.first + args.n - 1} "
        f"steps={steps} K={iters} "
        f"guidance={config.guidance} krylov={args.krylov} threads={torch.get_num_threads()}"
    )
    print(
        "μ(t) = "
        + " ".join(f"{t}:{m:.2f}" for t, m in mu.items())
        + f"  ({time.perf_counter() - start:.0f} s)"
    )
    rules = [("linear", "linear", "newton"), ("dynamic", "dynamic", "newton")]
    rules += [(f"c/μ² c={c}", c, "newton") for c in (0.5, 1.5, 3.0)]
    rules += [("gradient, linear", "linear", "gradient")]
    print(
        f"{'rule':<18} {'MSE t≈900':>10} {'t≈500':>10} {'t≈100':>10} {'final':>10} "
        f"{'hole dB':>8} {'s':>5}"
    )
    curves, finals = {}, {}
    for name, rule, direction in rules:
        start = time.perf_counter()
        latent_out, mses, timesteps = sample_with_rule(
            denoiser,
            constraint,
            shape,
            steps=steps,
            iters=iters,
            rule=rule,
            mu=mu,
            direction=direction,
            seed=0,
        )
        curve = mses.mean(1).numpy()
        curves[name] = (timesteps, curve)
        finals[name] = float(curve[-1])
        hole_db = float("nan")  # a run whose fit ends worse than it began diverged: no PSNR
        if latent_out is not None and curve[-1] <= curve[0]:
            with torch.no_grad():
                result = backend.decode(latent_out).clamp(-1, 1)
            hole_db = float(
                np.mean(
                    [
                        psnr(result[i : i + 1], image[i : i + 1], hole[i : i + 1])
                        for i in range(args.n)
                    ]
                )
            )
        picks = [int(np.argmin([abs(t - want) for t in timesteps])) for want in (900, 500, 100)]
        print(
            f"{name:<18} "
            + " ".join(f"{curve[p]:>10.4g}" for p in picks)
            + f" {curve[-1]:>10.4g} {hole_db:>8.2f} {time.perf_counter() - start:>5.0f}",
            flush=True,
        )
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, (timesteps, curve) in curves.items():
        style = "--" if name.startswith("gradient") else "-"
        ax.semilogy(
            timesteps, np.where(np.isfinite(curve), curve, np.nan), style, marker=".", label=name
        )
    ax.set(
        xlabel="t",
        ylabel="known-region MSE of x̂0 (model space)",
        title=f"Step sizes, {model.model}: {args.n} held-out composites, K={iters}",
    )
    ax.invert_xaxis()
    ax.legend(fontsize=8)
    fig.tight_layout()
    from jacobian_spectrum import save_figure

    save_figure(fig, args.out)
    print(f"wrote {args.out}")
    newton_rules = {k: v for k, v in finals.items() if not k.startswith("gradient")}
    best = min(newton_rules, key=lambda k: newton_rules[k])
    print(
        f"best={best.replace(' ', '')} final_mse={finals[best]:.4g} "
        f"linear_mse={finals['linear']:.4g}"
    )


if __name__ == "__main__":
    main()
