"""The denoiser Jacobian's spectrum and asymmetry at t = 900 / 700 / 500 / 300 (issue #17).

At each t, x_t is a held-out composite's latent (``mini``; its caption is the prompt) or a random
latent (``tiny`` / ``sd15``: random-weight UNets of those architectures), diffused with one fixed
noise draw. ``solvers.jacobian_spectrum`` runs Arnoldi on J = ∂x̂0/∂x_t (J·v by central finite
differences), on (J+Jᵀ)/2 and on (J−Jᵀ)/2 (Jᵀ·v by autograd at the same t), and estimates
‖J−Jᵀ‖_F/‖J‖_F with Hutchinson probes. ``--exact`` also builds the dense J by autograd (mini's
16×16×4 latent: 1024 rows) and prints its exact eigenvalues beside the Arnoldi estimates.

Writes ``docs/jacobian_spectrum.png`` (top |eigenvalue| against t next to the published SD 1.x
values, the asymmetry, J's Ritz values) and ``docs/jacobian_column_row.png`` (one column J·e_i by
finite difference against one row Jᵀ·e_i by autograd, at the latent's centre cell).

    python benchmarks/jacobian_spectrum.py --model mini --exact
    python benchmarks/jacobian_spectrum.py --model sd15 --device cuda

The measurement and both figures are ``layerdecomp.analysis``'s, the same that
``layerdecomp analyze jacobian`` writes for any model; this script adds the held-out composite,
the random-weight UNets and the printed comparison with the published values.

``--model`` is the benchmark's: ``mini`` or one of the random-weight architectures.
``--device`` is the model options' (:class:`ModelOptions`), ``--guidance`` the tasks' CFG weight w
(:class:`ConstraintConfig`), each with its declared help and bounds.

The last line is ``asymmetry=<mean over t> top_eig=<|λ|max of J at t=500>``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import solvers
from layerdecomp import analysis
from layerdecomp.analysis import PUBLISHED, TIMESTEPS, save_figure

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import quiet_libraries, to_tensor  # noqa: E402
from _config_args import add_config_arguments, parse_config, parse_placement  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402
from layerdecomp.tasks import ConstraintConfig  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent / "docs"

OWN_DEFAULTS = {
    "device": ("cpu", "the figures in docs/ are this default run, on the CPU"),
    "guidance": (2.0, "the figures' w; mini only, with the composite's caption as prompt"),
}
"""The benchmark's defaults where they differ from the model's and the tasks' (``auto``, w = 0)."""


def setup(model: str, device: str, guidance: float, index: int = 0, size: int = 64):
    """(denoiser, clean latent, description) for ``mini`` or a random-weight ``tiny`` / ``sd15``.

    ``mini``: the VAE latent of held-out composite ``index`` and its caption, with ``guidance``.
    ``tiny`` / ``sd15``: a random latent and random text embeddings (no guidance).
    """
    quiet_libraries()
    if model == "mini":
        from layerdecomp.data.composites import make_composite
        from layerdecomp.models import load_model

        backend = load_model("mini", device=device, dtype="float32")
        composite = make_composite(index, "heldout", size=size)
        with torch.no_grad():
            latent = backend.encode(to_tensor(composite.image).to(backend.device))
        denoiser = backend.denoiser(composite.caption, "", guidance)
        return denoiser, latent, f"held-out composite {index} ({composite.caption!r})"
    from diffusers import DDIMScheduler, UNet2DConditionModel
    from newton_vs_gradient import CONFIGS

    config = CONFIGS[model]
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config["unet"]).to(device).eval().requires_grad_(False)
    scheduler = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    g = torch.Generator().manual_seed(0)
    width = config["unet"]["cross_attention_dim"]
    cond = torch.randn(1, config["tokens"], width, generator=g).to(device)
    latent = torch.randn(1, 4, config["latent"], config["latent"], generator=g).to(device)

    def model_fn(x, t):
        return unet(x, t, encoder_hidden_states=cond.expand(x.shape[0], -1, -1)).sample

    return solvers.Denoiser(model_fn, scheduler), latent, "random latent, random weights"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model",
        choices=("mini", "tiny", "sd15"),
        default="mini",
        help="mini, or a random-weight UNet of that architecture (no guidance)",
    )
    parser.add_argument("--t", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument("--krylov", type=int, default=30, help="Krylov size per operator")
    parser.add_argument("--probes", type=int, default=16, help="Hutchinson probes")
    parser.add_argument("--index", type=int, default=0, help="held-out composite (mini)")
    parser.add_argument("--exact", action="store_true", help="also the dense J (small latents)")
    parser.add_argument("--cell-t", type=int, default=500, help="t of the column/row picture")
    parser.add_argument("--out", type=Path, default=DOCS / "jacobian_spectrum.png")
    parser.add_argument("--column-row", type=Path, default=DOCS / "jacobian_column_row.png")
    placing = add_config_arguments(
        parser, ModelOptions, only=("device",), defaults={"device": OWN_DEFAULTS["device"]}
    )
    task_options = add_config_arguments(
        parser,
        ConstraintConfig,
        only=("guidance",),
        defaults={"guidance": OWN_DEFAULTS["guidance"]},
    )
    args = parser.parse_args(argv)
    guidance = parse_config(parser, ConstraintConfig, args, task_options).guidance
    if any(not 0 <= t < 1000 for t in [*args.t, args.cell_t]):
        parser.error("--t and --cell-t: timesteps in [0, 999]")
    if args.krylov < 1 or args.probes < 2:
        parser.error("--krylov must be ≥ 1 and --probes ≥ 2")
    for path in (args.out, args.column_row):
        if not path.parent.is_dir():
            parser.error(f"{path}: directory {path.parent} does not exist")
    try:
        import matplotlib  # noqa: F401  (the figures are drawn by layerdecomp.analysis.plots)
    except ImportError:
        parser.error("matplotlib is needed for the plots: pip install 'layerdecomp[analyze]'")
    device = str(parse_placement(parser, args, placing)[0])

    denoiser, latent, what = setup(args.model, device, guidance, args.index)
    if args.exact and latent.numel() > analysis.MAX_EXACT:
        parser.error(
            f"--exact: the latent has {latent.numel()} entries (at most {analysis.MAX_EXACT})"
        )
    print(
        f"model={args.model} device={device} latent={tuple(latent.shape)} {what} "
        f"guidance={guidance if args.model == 'mini' else 0} krylov={args.krylov} "
        f"probes={args.probes} delta0=1e-3 central threads={torch.get_num_threads()}"
    )
    header = f"{'t':>4} {'|λ|max J':>9} {'(J+Jᵀ)/2':>9} {'(J−Jᵀ)/2':>9} {'asymmetry':>15}"
    print(header + ("  exact: J / sym / skew / asym" if args.exact else "") + "  SD 1.x pub.")
    rows = []
    for t in args.t:
        row = analysis.spectrum_row(
            denoiser, latent, t, krylov=args.krylov, probes=args.probes, seed=0, exact=args.exact
        )
        line = (
            f"{t:>4} {row.top['jacobian']:>9.3f} {row.top['symmetric']:>9.3f} "
            f"{row.top['skew']:>9.3f} {row.asymmetry:>8.3f} ± {row.asymmetry_stderr:.3f}"
        )
        if row.exact is not None:
            keys = ("jacobian", "symmetric", "skew", "asymmetry")
            line += "  " + " / ".join(f"{row.exact[k]:.3f}" for k in keys)
        published = " / ".join(f"{v:.2f}" for v in PUBLISHED.get(t, ()))
        print(
            f"{line}  {published or '-'}  ({row.nfe} fwd, {row.backward} bwd, {row.seconds:.0f} s)",
            flush=True,
        )
        rows.append(row)
    save_figure(analysis.spectrum_figure(rows, args.model), args.out)

    pair = analysis.column_and_row(denoiser, latent, args.cell_t, seed=0)
    print(
        f"column/row at t={args.cell_t}, cell {pair.cell}: cos(J·e_i, Jᵀ·e_i)={pair.cosine:.3f} "
        f"‖J·e_i − Jᵀ·e_i‖/‖J·e_i‖={pair.relative:.3f}; J_ii={pair.diagonal:.4f}"
    )
    save_figure(analysis.column_row_figure(pair, args.model), args.column_row)
    print(f"wrote {args.out} and {args.column_row}")
    mean_asymmetry = float(np.mean([r.asymmetry for r in rows]))
    at_500 = next((r.top["jacobian"] for r in rows if r.t == 500), float("nan"))
    print(f"asymmetry={mean_asymmetry:.3f} top_eig={at_500:.3f}")


if __name__ == "__main__":
    main()
