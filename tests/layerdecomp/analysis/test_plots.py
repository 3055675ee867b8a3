"""The two figures: PNGs Pillow opens, at the sizes asked; matplotlib only when drawing."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from layerdecomp.analysis import (
    ColumnRow,
    SpectrumRow,
    column_row_figure,
    save_figure,
    spectrum_figure,
    to_csv,
)


def rows(exact: bool) -> list[SpectrumRow]:
    g = torch.Generator().manual_seed(0)
    out = []
    for k, t in enumerate((900, 500, 100)):
        eigenvalues = torch.randn(16, generator=g, dtype=torch.float64) * (3 - k)
        out.append(
            SpectrumRow(
                t=t,
                top={"jacobian": 3.0 - k, "symmetric": 3.5 - k, "skew": 1.0},
                asymmetry=0.9 - 0.1 * k,
                asymmetry_stderr=0.02,
                ritz=eigenvalues[:4].to(torch.complex128),
                nfe=10,
                backward=3,
                seconds=0.1,
                exact={"jacobian": 3.0, "symmetric": 3.5, "skew": 1.0, "asymmetry": 0.8}
                if exact
                else None,
                exact_eigenvalues=eigenvalues.to(torch.complex128) if exact else None,
            )
        )
    return out


def pair(channels: int) -> ColumnRow:
    g = torch.Generator().manual_seed(1)
    column = torch.randn(channels, 6, 6, generator=g)
    return ColumnRow(t=500, cell=(0, 3, 3), column=column, row=column.roll(1, dims=-1))


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("RGB"))


@pytest.mark.parametrize("exact", [False, True])
def test_spectrum_figure(tmp_path, exact):
    path = tmp_path / "spectrum.png"
    save_figure(spectrum_figure(rows(exact), "toy"), path)
    image = pixels(path)
    assert image.shape == (484, 1650, 3)  # 15 × 4.4 inches at 110 dpi
    assert image.std() > 10  # drawn, not blank
    assert [p.name for p in tmp_path.iterdir()] == ["spectrum.png"]  # no temporary file left


def test_exact_values_change_the_spectrum_figure(tmp_path):
    save_figure(spectrum_figure(rows(False), "toy"), tmp_path / "a.png")
    save_figure(spectrum_figure(rows(True), "toy"), tmp_path / "b.png")
    assert not np.array_equal(pixels(tmp_path / "a.png"), pixels(tmp_path / "b.png"))


@pytest.mark.parametrize(("channels", "width"), [(4, 1144), (16, 2860)])
def test_column_row_figure(tmp_path, channels, width):
    path = tmp_path / "column_row.png"
    save_figure(column_row_figure(pair(channels), "toy"), path)
    assert pixels(path).shape == (814, width, 3)  # 2.6 in per channel, at most 26 in; 7.4 in


def test_only_the_figures_need_matplotlib(monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    assert to_csv(rows(False)).startswith("t,top_jacobian")
    with pytest.raises(ImportError):
        spectrum_figure(rows(False), "toy")
