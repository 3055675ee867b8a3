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

The last line is ``asymmetry=<mean over t> top_eig=<|λ|max of J at t=500>``.
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

DOCS = Path(__file__).resolve().parent.parent / "docs"
TIMESTEPS = (900, 700, 500, 300)
# The authors' published largest |eigenvalue| on SD 1.x (J, symmetric part, skew part).
PUBLISHED = {
    900: (16.85, 16.44, 2.67),
    700: (8.45, 8.65, 3.35),
    500: (7.88, 9.00, 2.51),
    300: (4.98, 6.52, 1.22),
}
PART_LABELS = {"jacobian": "J", "symmetric": "(J+Jᵀ)/2", "skew": "(J−Jᵀ)/2"}


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


def diffuse(denoiser, latent: torch.Tensor, t: int, seed: int = 0) -> torch.Tensor:
    """``latent`` diffused to ``t`` with the noise draw of ``seed`` (the same at every t)."""
    noise = torch.randn(latent.shape, generator=torch.Generator().manual_seed(seed))
    return solvers.add_noise(latent, noise.to(latent.device), t, denoiser.scheduler)


def exact_spectrum(denoiser, x_t: torch.Tensor, t: int) -> dict[str, float]:
    """Top |eigenvalue| of the dense J, its parts, and the exact asymmetry."""
    j = solvers.jacobian_matrix(denoiser, x_t, t, chunk=32).double().cpu()
    return {
        "jacobian": torch.linalg.eigvals(j).abs().max().item(),
        "symmetric": torch.linalg.eigvalsh((j + j.T) / 2).abs().max().item(),
        "skew": torch.linalg.eigvals((j - j.T) / 2).abs().max().item(),
        "asymmetry": ((j - j.T).norm() / j.norm()).item(),
        "eigenvalues": torch.linalg.eigvals(j),
    }


def column_and_row(denoiser, x_t: torch.Tensor, t: int, cell: tuple[int, int, int]):
    """``J·e_i`` (column i, finite difference) and ``Jᵀ·e_i`` (row i, autograd) at one cell."""
    products = solvers.JacobianProducts(denoiser, x_t, t)
    basis = torch.zeros_like(x_t)
    basis[(0, *cell)] = 1.0
    return products.jvp(basis)[0].cpu(), products.vjp(basis)[0].cpu()


def save_figure(figure, path: Path) -> None:
    """Write a matplotlib figure atomically (no half-written PNG on failure)."""
    from layerdecomp.io import write_atomically

    write_atomically([(path, lambda temp: figure.savefig(temp, format="png", dpi=110))])


def plot_spectrum(rows: list[dict], model: str, path: Path) -> None:
    import matplotlib.pyplot as plt

    ts = [r["t"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for (part, label), color in zip(PART_LABELS.items(), ("C0", "C1", "C2"), strict=True):
        axes[0].plot(ts, [r[part] for r in rows], "o-", color=color, label=f"{label} ({model})")
        k = list(PART_LABELS).index(part)
        published = [PUBLISHED[t][k] for t in TIMESTEPS]
        axes[0].plot(TIMESTEPS, published, "s--", mfc="none", color=color, label=f"{label} SD 1.x")
    axes[0].set(xlabel="t", ylabel="largest |eigenvalue|", title="Arnoldi, top |λ|")
    axes[0].invert_xaxis()
    axes[0].legend(fontsize=7)
    errors = [2 * r["asymmetry_stderr"] for r in rows]
    axes[1].errorbar(ts, [r["asymmetry"] for r in rows], yerr=errors, fmt="o-", capsize=3)
    if all("exact_asymmetry" in r for r in rows):
        axes[1].plot(ts, [r["exact_asymmetry"] for r in rows], "kx", label="dense J (exact)")
        axes[1].legend(fontsize=8)
    axes[1].set(xlabel="t", ylabel="‖J−Jᵀ‖_F / ‖J‖_F", title="asymmetry (Hutchinson, ±2 s.e.)")
    axes[1].set_ylim(bottom=0)
    axes[1].invert_xaxis()
    for r, color in zip(rows, ("C3", "C4", "C5", "C6", "C7", "C8"), strict=False):
        if "exact_eigenvalues" in r:
            ev = r["exact_eigenvalues"]
            axes[2].plot(ev.real, ev.imag, ".", color=color, alpha=0.15, ms=3)
        ritz = r["ritz"]
        axes[2].plot(ritz.real, ritz.imag, "o", mfc="none", color=color, label=f"t={r['t']}")
    axes[2].set(xlabel="Re λ", ylabel="Im λ", title="Ritz values of J (dots: dense J)")
    axes[2].axhline(0, color="gray", lw=0.5)
    axes[2].axvline(0, color="gray", lw=0.5)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_column_row(column, row, cell, t, model, path: Path) -> None:
    import matplotlib.pyplot as plt

    maps = {"J·e_i: column i (finite difference)": column, "Jᵀ·e_i: row i (autograd)": row}
    maps["|J·e_i − Jᵀ·e_i|"] = column - row
    logs = {k: np.log10(v.abs().clamp_min(1e-8).numpy()) for k, v in maps.items()}
    top = max(v.max() for v in logs.values())
    channels = column.shape[0]
    fig, axes = plt.subplots(3, channels, figsize=(2.6 * channels, 7.4), squeeze=False)
    for i, (name, log) in enumerate(logs.items()):
        for c in range(channels):
            ax = axes[i][c]
            image = ax.imshow(log[c], vmin=top - 4, vmax=top, cmap="magma")
            if c == cell[0]:
                ax.plot(cell[2], cell[1], "c+", ms=10)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"channel {c}" if i == 0 else "", fontsize=8)
        axes[i][0].set_ylabel(name, fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="log10 magnitude")
    fig.suptitle(f"{model}, t={t}, cell (channel, y, x) = {cell}")
    save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("mini", "tiny", "sd15"), default="mini")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--t", type=int, nargs="+", default=list(TIMESTEPS))
    parser.add_argument("--krylov", type=int, default=30, help="Krylov size per operator")
    parser.add_argument("--probes", type=int, default=16, help="Hutchinson probes")
    parser.add_argument("--guidance", type=float, default=2.0, help="mini only")
    parser.add_argument("--index", type=int, default=0, help="held-out composite (mini)")
    parser.add_argument("--exact", action="store_true", help="also the dense J (small latents)")
    parser.add_argument("--cell-t", type=int, default=500, help="t of the column/row picture")
    parser.add_argument("--out", type=Path, default=DOCS / "jacobian_spectrum.png")
    parser.add_argument("--column-row", type=Path, default=DOCS / "jacobian_column_row.png")
    args = parser.parse_args(argv)
    if any(not 0 <= t < 1000 for t in [*args.t, args.cell_t]):
        parser.error("--t and --cell-t: timesteps in [0, 999]")
    if args.krylov < 1 or args.probes < 2:
        parser.error("--krylov must be ≥ 1 and --probes ≥ 2")
    for path in (args.out, args.column_row):
        if not path.parent.is_dir():
            parser.error(f"{path}: directory {path.parent} does not exist")
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        parser.error("matplotlib is needed for the plots: pip install matplotlib")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error(f"--device {args.device}: CUDA is not available")

    denoiser, latent, what = setup(args.model, args.device, args.guidance, args.index)
    if args.exact and latent.numel() > 4096:
        parser.error(f"--exact: the latent has {latent.numel()} entries (at most 4096)")
    print(
        f"model={args.model} device={args.device} latent={tuple(latent.shape)} {what} "
        f"guidance={args.guidance if args.model == 'mini' else 0} krylov={args.krylov} "
        f"probes={args.probes} delta0=1e-3 central threads={torch.get_num_threads()}"
    )
    header = f"{'t':>4} {'|λ|max J':>9} {'(J+Jᵀ)/2':>9} {'(J−Jᵀ)/2':>9} {'asymmetry':>15}"
    print(header + ("  exact: J / sym / skew / asym" if args.exact else "") + "  SD 1.x pub.")
    rows = []
    for t in args.t:
        start = time.perf_counter()
        x_t = diffuse(denoiser, latent, t)
        spectrum = solvers.jacobian_spectrum(
            denoiser,
            x_t,
            t,
            size=args.krylov,
            probes=args.probes,
            generator=torch.Generator().manual_seed(t),
        )
        row = {part: spectrum.top(part) for part in PART_LABELS}
        row.update(t=t, asymmetry=spectrum.asymmetry, asymmetry_stderr=spectrum.asymmetry_stderr)
        row["ritz"] = spectrum.parts["jacobian"].eigenvalues.cpu().numpy()
        line = (
            f"{t:>4} {row['jacobian']:>9.3f} {row['symmetric']:>9.3f} {row['skew']:>9.3f} "
            f"{spectrum.asymmetry:>8.3f} ± {spectrum.asymmetry_stderr:.3f}"
        )
        if args.exact:
            exact = exact_spectrum(denoiser, x_t, t)
            row["exact_asymmetry"] = exact["asymmetry"]
            row["exact_eigenvalues"] = exact["eigenvalues"].cpu().numpy()
            line += "  " + " / ".join(
                f"{exact[k]:.3f}" for k in ("jacobian", "symmetric", "skew", "asymmetry")
            )
        published = " / ".join(f"{v:.2f}" for v in PUBLISHED.get(t, ()))
        seconds = time.perf_counter() - start
        print(
            f"{line}  {published or '-'}  ({spectrum.nfe} fwd, {spectrum.backward} bwd, "
            f"{seconds:.0f} s)",
            flush=True,
        )
        rows.append(row)
    plot_spectrum(rows, args.model, args.out)

    cell = (0, latent.shape[-2] // 2, latent.shape[-1] // 2)
    x_t = diffuse(denoiser, latent, args.cell_t)
    column, row = column_and_row(denoiser, x_t, args.cell_t, cell)
    cosine = torch.nn.functional.cosine_similarity(column.flatten(), row.flatten(), dim=0)
    relative = ((column - row).norm() / column.norm()).item()
    print(
        f"column/row at t={args.cell_t}, cell {cell}: cos(J·e_i, Jᵀ·e_i)={cosine.item():.3f} "
        f"‖J·e_i − Jᵀ·e_i‖/‖J·e_i‖={relative:.3f}; J_ii={column[cell].item():.4f}"
    )
    plot_column_row(column, row, cell, args.cell_t, args.model, args.column_row)
    print(f"wrote {args.out} and {args.column_row}")
    mean_asymmetry = float(np.mean([r["asymmetry"] for r in rows]))
    at_500 = next((r["jacobian"] for r in rows if r["t"] == 500), float("nan"))
    print(f"asymmetry={mean_asymmetry:.3f} top_eig={at_500:.3f}")


if __name__ == "__main__":
    main()
