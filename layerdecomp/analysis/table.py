"""The spectrum table: one row per timestep, as CSV (for programs) and Markdown (for people).

Columns: ``t``, the largest |eigenvalue| of J, (J+Jᵀ)/2 and (J−Jᵀ)/2 by Arnoldi, the Hutchinson
asymmetry and its standard error, with ``exact=True`` the dense J's values, the denoiser passes
spent, and the published SD 1.x values where the run's t is one of theirs (t/T = 0.9, 0.7, 0.5,
0.3). No timings: the same seed gives the same table (they are in ``run.json``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

from .jacobian import PART_LABELS, PUBLISHED, SpectrumRow

EXACT_KEYS = ("jacobian", "symmetric", "skew", "asymmetry")


def published_at(t: int, length: int = 1000) -> tuple[float, float, float] | None:
    """The published SD 1.x values at ``t`` of a ``length``-step schedule, if they measured it."""
    scaled = t * 1000 / length
    return PUBLISHED.get(int(scaled)) if scaled == int(scaled) else None


def table_records(rows: Sequence[SpectrumRow], length: int = 1000) -> list[dict[str, Any]]:
    """The table as flat dicts (the CSV's rows); missing values are ``None``."""
    exact = any(r.exact is not None for r in rows)
    records = []
    for r in rows:
        record: dict[str, Any] = {"t": r.t}
        record.update({f"top_{part}": r.top[part] for part in PART_LABELS})
        record.update(asymmetry=r.asymmetry, asymmetry_stderr=r.asymmetry_stderr)
        if exact:
            record.update({f"exact_{k}": (r.exact or {}).get(k) for k in EXACT_KEYS})
        record.update(nfe=r.nfe, backward=r.backward)
        published = published_at(r.t, length)
        for part, value in zip(PART_LABELS, published or (None,) * 3, strict=True):
            record[f"published_sd1_{part}"] = value
        records.append(record)
    return records


def to_csv(rows: Sequence[SpectrumRow], length: int = 1000) -> str:
    """The table as CSV text (full precision; an empty cell for a missing value)."""
    records = table_records(rows, length)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(records[0]) if records else ["t"])
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return out.getvalue()


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def to_markdown(rows: Sequence[SpectrumRow], length: int = 1000, title: str = "") -> str:
    """The table in Markdown: the largest |eigenvalue| per operator, the asymmetry ± its
    standard error, the dense J's values (when measured) and the published SD 1.x values."""
    exact = any(r.exact is not None for r in rows)
    header = ["t", *PART_LABELS.values(), "‖J−Jᵀ‖_F/‖J‖_F"]
    if exact:
        header.append("dense J: J / sym / skew / asym")
    header += ["forward / backward", "SD 1.x published: J / sym / skew"]
    lines = [f"# {title}", ""] if title else []
    lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for r in rows:
        cells = [str(r.t), *(_cell(r.top[part]) for part in PART_LABELS)]
        cells.append(f"{_cell(r.asymmetry)} ± {_cell(r.asymmetry_stderr)}")
        if exact:
            cells.append(" / ".join(_cell((r.exact or {}).get(k)) for k in EXACT_KEYS))
        cells.append(f"{r.nfe} / {r.backward}")
        published = published_at(r.t, length)
        cells.append(" / ".join(f"{v:.2f}" for v in published) if published else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Largest |eigenvalue| by Arnoldi; ± is the jackknife standard error of the Hutchinson "
        "estimate (0 for a symmetric J, about √2 for a random matrix).",
    ]
    return "\n".join(lines) + "\n"


__all__ = ["published_at", "table_records", "to_csv", "to_markdown"]
