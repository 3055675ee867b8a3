"""Why Newton trails the gradient on mini: ablations at the same K, and the gap per noise level.

Part 1, the sampler (bounding-box inpainting of the first ``--n`` held-out composites in one
batch, 20 DDIM steps, as ``mini_quality.py``): Newton (J·e) and the gradient (Jᵀe) with the same
K (per step, Newton 1 + 2K forwards; the gradient 1 + K forwards and K backwards, about the same
FLOPs: ``direction_flops.py``), while one setting at a time moves from the default (K = 5,
λ 0.5 → 0.1, δ0 = 0.005, guidance 2): K, the λ rule, δ0 (Newton only; the gradient ignores it),
guidance. Per run: the hole's PSNR, the known region's final RMS error (model space), the
forward NFE of each direction and the gradient's backward passes.

Part 2, one noise level at a time: x_t is the composites' true latent diffused to t (one fixed
noise draw), and K = 5 iterations of each direction run at that t alone. With e the constraint
error at x_t, the first-order decrease of ½‖e‖² along a max-normalised step is ⟨Jᵀe, J·e⟩ /
max|J·e| for Newton and ‖Jᵀe‖² / max|Jᵀe| for the gradient: their ratio, cos(J·e, Jᵀe) and the
share of composites where Newton ascends (⟨Jᵀe, J·e⟩ < 0) tie the gap to J's asymmetry
‖J−Jᵀ‖_F/‖J‖_F (Hutchinson, on the batch's block-diagonal J). "Hole/known" is the first-order
change of x̂0 a step h makes, J·h, in the hole against in the known region (‖·‖ ratio, median):
the collateral change of the content the constraint does not fix, per unit of fit.

    python benchmarks/newton_gap.py --n 12

``--model`` is the model options' (:class:`ModelOptions`; loaded on the CPU in float32),
``--steps`` the task's (:class:`InpaintConfig`); the ablated settings are the benchmark's own.

The last line is ``gap_db=<gradient − newton, default settings> cos=<mean cos(J·e, Jᵀe) over t>
asymmetry=<mean over t>``.
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
from _common import quiet_libraries  # noqa: E402
from _config_args import add_config_arguments, parse_config  # noqa: E402
from mini_quality import psnr  # noqa: E402
from step_size import heldout_batch  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.tasks import InpaintConfig  # noqa: E402

DEFAULT = dict(iters=5, lam="linear", delta0=0.005, guidance=2.0)
ABLATIONS = {  # name: (changes from DEFAULT, run the gradient too)
    "default": ({}, True),
    "K=1": ({"iters": 1}, True),
    "K=2": ({"iters": 2}, True),
    "K=10": ({"iters": 10}, True),
    "λ constant 0.1": ({"lam": 0.1}, True),
    "λ dynamic 0.5/max|h|": ({"lam": "dynamic"}, True),
    "δ0=0.0005": ({"delta0": 0.0005}, False),
    "δ0=0.05": ({"delta0": 0.05}, False),
    "guidance 0": ({"guidance": 0.0}, True),
}
NOISE_LEVELS = (900, 700, 500, 300)


def hole_psnr(backend, latent, image, hole) -> float:
    """Mean masked PSNR (dB) of the decoded latents against the truth, over the holes."""
    with torch.no_grad():
        result = backend.decode(latent).clamp(-1, 1)
    return float(
        np.mean(
            [
                psnr(result[i : i + 1], image[i : i + 1], hole[i : i + 1])
                for i in range(image.shape[0])
            ]
        )
    )


def run_sampler(backend, batch, settings: dict, direction: str, steps: int) -> dict:
    image, hole, constraint, captions = batch
    denoiser = backend.denoiser(captions, "", settings["guidance"])
    start = time.perf_counter()
    generator = torch.Generator().manual_seed(0)
    shape = backend.latent_shape(len(captions), 64, 64)
    x_t = solvers.initial_noise(denoiser.scheduler, shape, generator=generator)
    refine = solvers.RefineOptions(
        iters=settings["iters"],
        direction=direction,
        lam=settings["lam"],
        delta0=settings["delta0"],
    )
    options = solvers.SampleOptions(steps=steps, refine=refine)
    out = solvers.sample(denoiser, constraint, x_t, options, generator=generator)
    seconds = time.perf_counter() - start
    return {
        "psnr": hole_psnr(backend, out.sample, image, hole),
        "rms": out.residuals[-1, -1].mean().item(),
        "nfe": out.nfe,
        "backward": out.backward,
        "seconds": seconds,
    }


def part_sampler(backend, batch, names, steps) -> float:
    print(
        f"{'setting':<22} {'Newton dB':>9} {'grad. dB':>9} {'gap dB':>7} "
        f"{'Newton RMS':>10} {'grad. RMS':>10} {'NFE':>9} {'bwd':>4} {'s':>5}"
    )
    gap_default = float("nan")
    for name in names:
        changes, with_gradient = ABLATIONS[name]
        settings = {**DEFAULT, **changes}
        newton = run_sampler(backend, batch, settings, "newton", steps)
        seconds = newton["seconds"]
        gradient = {"psnr": float("nan"), "rms": float("nan"), "nfe": 0, "backward": 0}
        if with_gradient:
            gradient = run_sampler(backend, batch, settings, "gradient", steps)
            seconds += gradient["seconds"]
        gap = gradient["psnr"] - newton["psnr"]
        nfe = f"{newton['nfe']}/{gradient['nfe']}"
        if name == "default":
            gap_default = gap
        print(
            f"{name:<22} {newton['psnr']:>9.2f} {gradient['psnr']:>9.2f} {gap:>7.2f} "
            f"{newton['rms']:>10.4f} {gradient['rms']:>10.4f} {nfe:>9} "
            f"{gradient['backward']:>4} {seconds:>5.0f}",
            flush=True,
        )
    return gap_default


def per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).flatten(1).sum(1)


def part_noise_levels(backend, batch, levels, probes: int) -> tuple[float, float]:
    image, hole, constraint, captions = batch
    denoiser = backend.denoiser(captions, "", DEFAULT["guidance"])
    with torch.no_grad():
        latent = backend.encode(image)
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(0))
    print(
        f"{'t':>4} {'asym.':>6} {'cos(Je,Jᵀe)':>11} {'descent N/G':>11} {'N ascends':>9} "
        f"{'hole/known N':>12} {'G':>5} {'RMS before':>10} {'N after':>8} {'G after':>8} "
        f"{'N dB':>6} {'G dB':>6}"
    )
    cosines, asymmetries = [], []
    for t in levels:
        x_t = solvers.add_noise(latent, noise, t, denoiser.scheduler)
        products = solvers.JacobianProducts(denoiser, x_t, t, delta0=0.005)
        e, before = constraint.error(products.x0)
        je, jte = products.jvp(e), products.vjp(e)
        cos = per_sample(je, jte) / (je.flatten(1).norm(dim=1) * jte.flatten(1).norm(dim=1))
        newton_rate = per_sample(jte, je) / je.abs().flatten(1).amax(1)
        gradient_rate = per_sample(jte, jte) / jte.abs().flatten(1).amax(1)
        ratio = (newton_rate / gradient_rate).median().item()
        ascends = (newton_rate < 0).float().mean().item()
        ratio_asym, _ = solvers.asymmetry(products, probes, torch.Generator().manual_seed(t))
        known = constraint.mask.expand_as(e)
        collateral = {}
        for name, h in (("newton", je), ("gradient", jte)):
            moved = products.jvp(h)
            hole_change = ((1 - known) * moved).flatten(1).norm(dim=1)
            collateral[name] = (hole_change / (known * moved).flatten(1).norm(dim=1)).median()
        after = {}
        for direction in ("newton", "gradient"):
            options = solvers.RefineOptions(iters=DEFAULT["iters"], direction=direction)
            out = solvers.refine(denoiser, constraint, x_t, t, options)
            after[direction] = (
                out.residuals[-1].mean().item(),
                hole_psnr(backend, out.x0, image, hole),
            )
        cosines.append(cos.mean().item())
        asymmetries.append(ratio_asym)
        print(
            f"{t:>4} {ratio_asym:>6.3f} {cos.mean().item():>11.3f} {ratio:>11.3f} "
            f"{ascends:>9.2f} {collateral['newton']:>12.2f} {collateral['gradient']:>5.2f} "
            f"{before.mean().item():>10.4f} {after['newton'][0]:>8.4f} "
            f"{after['gradient'][0]:>8.4f} {after['newton'][1]:>6.2f} {after['gradient'][1]:>6.2f}",
            flush=True,
        )
    return float(np.mean(cosines)), float(np.mean(asymmetries))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=12, help="held-out composites (one batch)")
    parser.add_argument("--only", nargs="*", choices=sorted(ABLATIONS), default=list(ABLATIONS))
    parser.add_argument("--levels", type=int, nargs="*", default=list(NOISE_LEVELS))
    parser.add_argument("--probes", type=int, default=8, help="Hutchinson probes per level")
    model_options = add_config_arguments(parser, ModelOptions, only=("model",))
    task_options = add_config_arguments(parser, InpaintConfig, only=("steps",))
    args = parser.parse_args(argv)
    steps = parse_config(parser, InpaintConfig, args, task_options).sampling.steps
    cpu = {"device": "cpu", "dtype": "float32"}
    model = parse_config(parser, ModelOptions, args, model_options, cpu)
    if args.n < 1 or args.probes < 2:
        parser.error("--n must be positive, --probes ≥ 2")
    if any(not 0 <= t < 1000 for t in args.levels):
        parser.error("--levels: timesteps in [0, 999]")
    quiet_libraries()
    backend = model.load()
    batch = heldout_batch(backend, 0, args.n)
    print(
        f"model={model.model} n={args.n} steps={steps} default={DEFAULT} "
        f"threads={torch.get_num_threads()}"
    )
    gap = part_sampler(backend, batch, args.only, steps) if args.only else float("nan")
    cos, asym = float("nan"), float("nan")
    if args.levels:
        cos, asym = part_noise_levels(backend, batch, args.levels, args.probes)
    print(f"gap_db={gap:.2f} cos={cos:.3f} asymmetry={asym:.3f}")


if __name__ == "__main__":
    main()
