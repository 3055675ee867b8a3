"""The two figures of the Jacobian analysis (matplotlib, the ``analyze`` extra).

:func:`spectrum_figure`: the largest |eigenvalue| of J, (J+Jᵀ)/2 and (J−Jᵀ)/2 against t beside
the published SD 1.x values, the asymmetry with ±2 standard errors, and J's Ritz values (over
the dense spectrum when measured). :func:`column_row_figure`: log-magnitude maps of one column
``J·e_i``, the matching row ``Jᵀ·e_i`` and their difference, one panel per latent channel.

Figures are built on matplotlib's object API with the Agg canvas (no pyplot, no display, no
global backend switch); its bundled DejaVu fonts are all they need. matplotlib is imported when a
figure is made, so the rest of :mod:`layerdecomp.analysis` works without it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .jacobian import PART_LABELS, PUBLISHED, TIMESTEPS, ColumnRow, SpectrumRow

DPI = 110
COLORS = ("C0", "C1", "C2")
RITZ_COLORS = ("C3", "C4", "C5", "C6", "C7", "C8")


def new_figure(**kwargs: Any):
    """A matplotlib ``Figure`` on an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(**kwargs)
    FigureCanvasAgg(figure)
    return figure


def png_writer(figure, dpi: int = DPI) -> Callable[[Path], None]:
    """``write(path)``: ``figure`` as PNG, a writer for :func:`~layerdecomp.io.write_atomically`."""
    return lambda path: figure.savefig(path, format="png", dpi=dpi)


def save_figure(figure, path: Path, dpi: int = DPI) -> None:
    """Write ``figure`` to ``path`` as PNG atomically (no half-written file on failure)."""
    from ..io import write_atomically

    write_atomically([(Path(path), png_writer(figure, dpi))])


def spectrum_figure(rows: Sequence[SpectrumRow], label: str, length: int = 1000):
    """Top |λ| against t (with the published SD 1.x values, placed at t·length/1000), the
    asymmetry, and the Ritz values of J. ``label`` names the model in the legend."""
    figure = new_figure(figsize=(15, 4.4))
    axes = figure.subplots(1, 3)
    ts = [r.t for r in rows]
    published_ts = [t * length / 1000 for t in TIMESTEPS]
    for k, ((part, name), color) in enumerate(zip(PART_LABELS.items(), COLORS, strict=True)):
        axes[0].plot(ts, [r.top[part] for r in rows], "o-", color=color, label=f"{name} ({label})")
        published = [PUBLISHED[t][k] for t in TIMESTEPS]
        axes[0].plot(
            published_ts, published, "s--", mfc="none", color=color, label=f"{name} SD 1.x"
        )
    axes[0].set(xlabel="t", ylabel="largest |eigenvalue|", title="Arnoldi, top |λ|")
    axes[0].invert_xaxis()
    axes[0].legend(fontsize=7)
    errors = [2 * r.asymmetry_stderr for r in rows]
    axes[1].errorbar(ts, [r.asymmetry for r in rows], yerr=errors, fmt="o-", capsize=3)
    if rows and all(r.exact is not None for r in rows):
        exact = [r.exact["asymmetry"] for r in rows]  # type: ignore[index]
        axes[1].plot(ts, exact, "kx", label="dense J (exact)")
        axes[1].legend(fontsize=8)
    axes[1].set(xlabel="t", ylabel="‖J−Jᵀ‖_F / ‖J‖_F", title="asymmetry (Hutchinson, ±2 s.e.)")
    axes[1].set_ylim(bottom=0)
    axes[1].invert_xaxis()
    for r, color in zip(rows, RITZ_COLORS, strict=False):
        if r.exact_eigenvalues is not None:
            ev = r.exact_eigenvalues.numpy()
            axes[2].plot(ev.real, ev.imag, ".", color=color, alpha=0.15, ms=3)
        ritz = r.ritz.numpy()
        axes[2].plot(ritz.real, ritz.imag, "o", mfc="none", color=color, label=f"t={r.t}")
    axes[2].set(xlabel="Re λ", ylabel="Im λ", title="Ritz values of J (dots: dense J)")
    axes[2].axhline(0, color="gray", lw=0.5)
    axes[2].axvline(0, color="gray", lw=0.5)
    axes[2].legend(fontsize=8)
    figure.tight_layout()
    return figure


def column_row_figure(pair: ColumnRow, label: str):
    """Log10 magnitude of ``J·e_i``, ``Jᵀ·e_i`` and their difference, per channel (a cross at
    cell i); the colour scale spans four decades below the largest value."""
    maps = {
        "J·e_i: column i (finite difference)": pair.column,
        "Jᵀ·e_i: row i (autograd)": pair.row,
    }
    maps["|J·e_i − Jᵀ·e_i|"] = pair.column - pair.row
    logs = {k: np.log10(v.abs().clamp_min(1e-8).numpy()) for k, v in maps.items()}
    top = max(v.max() for v in logs.values())
    channels = pair.column.shape[0]
    width = min(2.6, 26 / channels)  # 16-channel latents (SD3, Flux) stay 26 inches wide
    figure = new_figure(figsize=(width * channels, 7.4))
    axes = figure.subplots(3, channels, squeeze=False)
    image = None
    for i, (name, log) in enumerate(logs.items()):
        for c in range(channels):
            ax = axes[i][c]
            image = ax.imshow(log[c], vmin=top - 4, vmax=top, cmap="magma")
            if c == pair.cell[0]:
                ax.plot(pair.cell[2], pair.cell[1], "c+", ms=10)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"channel {c}" if i == 0 else "", fontsize=8)
        axes[i][0].set_ylabel(name, fontsize=8)
    figure.colorbar(image, ax=axes, shrink=0.6, label="log10 magnitude")
    figure.suptitle(f"{label}, t={pair.t}, cell (channel, y, x) = {pair.cell}")
    return figure


__all__ = ["column_row_figure", "new_figure", "png_writer", "save_figure", "spectrum_figure"]
