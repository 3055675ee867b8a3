"""Measurements of a model: the denoiser Jacobian's spectrum and asymmetry (issue #17).

:mod:`.inputs` prepares the clean latent; :mod:`.jacobian` computes (Arnoldi through
:mod:`solvers.spectrum`, the dense J of small latents, one column against one row);
:mod:`.table` writes the table as CSV and Markdown; :mod:`.plots` draws the two figures
(matplotlib, the ``analyze`` extra, imported only when a figure is made).
``layerdecomp analyze jacobian`` runs them on any model, ``benchmarks/jacobian_spectrum.py`` on
``mini`` and on random-weight UNets.
"""

from __future__ import annotations

from .inputs import clean_latent, work_size
from .jacobian import (
    MAX_EXACT,
    PART_LABELS,
    PUBLISHED,
    TIMESTEPS,
    ColumnRow,
    SpectrumRow,
    centre_cell,
    check_timesteps,
    column_and_row,
    default_timesteps,
    diffuse,
    exact_spectrum,
    schedule_length,
    spectrum_row,
    timestep_range,
)
from .plots import column_row_figure, png_writer, save_figure, spectrum_figure
from .table import published_at, table_records, to_csv, to_markdown

__all__ = [
    "MAX_EXACT",
    "PART_LABELS",
    "PUBLISHED",
    "TIMESTEPS",
    "ColumnRow",
    "SpectrumRow",
    "centre_cell",
    "check_timesteps",
    "clean_latent",
    "column_and_row",
    "column_row_figure",
    "default_timesteps",
    "diffuse",
    "exact_spectrum",
    "png_writer",
    "published_at",
    "save_figure",
    "schedule_length",
    "spectrum_figure",
    "spectrum_row",
    "table_records",
    "timestep_range",
    "to_csv",
    "to_markdown",
    "work_size",
]
