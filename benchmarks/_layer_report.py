"""What ``decompose_quality.py`` reports beyond its means: the true layers of a composite, the
field's per-layer metrics (:mod:`layerdecomp.layers.metrics`), the tail of the per-image IoU and a
sheet per failure (imported like ``_common``: the scripts' folder is on ``sys.path``)."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np
import torch
from _common import to_tensor
from PIL import Image, ImageDraw, ImageFont

from layerdecomp.data.composites import Composite
from layerdecomp.layers import Layers
from layerdecomp.layers.layerfiles import contact_sheet
from layerdecomp.layers.metrics import layer_scores
from layerdecomp.layers.writers import layer_images

TAIL = (0.5, 0.7)
"""The IoU thresholds whose share of images below the report prints."""

FAILURE = TAIL[0]
"""Images whose engine IoU is below this get a sheet under ``--gallery``."""

WORST = 10
"""How many of the lowest-IoU images the report lists."""

IOUS = (("iou", "IoU, engine"), ("matted_iou", "IoU, matted (default)"))
"""The per-image IoUs of the tail report: row key and label."""


def truth_layers(sample: Composite) -> Layers:
    """The composite's true layers: its foreground (colours and alpha) over its complete
    background, hidden part included, with its captions as prompts."""
    return Layers.two(
        to_tensor(np.ascontiguousarray(sample.fg[..., :3])),
        to_tensor(sample.bg),
        torch.from_numpy(sample.alpha)[None, None],
        prompts=[sample.caption_fg, sample.caption_bg],
    )


def field_metrics(layers: Layers, truth: Layers, prefix: str = "") -> dict[str, float]:
    """The foreground's soft alpha IoU and RGB L1 and the background's RGB L1, as row entries
    (``soft_iou``, ``fg_l1``, ``bg_l1``, each after ``prefix``); the background's alpha IoU is
    always 1 with two layers and is left out."""
    front, back = layer_scores(layers, truth)
    return {
        f"{prefix}soft_iou": front["alpha_iou"],
        f"{prefix}fg_l1": front["rgb_l1"],
        f"{prefix}bg_l1": back["rgb_l1"],
    }


def below(rows: list[dict], key: str, threshold: float) -> int:
    """How many rows have ``key`` below ``threshold``."""
    return sum(row[key] < threshold for row in rows)


def tail_report(name: str, rows: list[dict]) -> list[str]:
    """The lines of the per-image IoU distribution of one model's ``rows``: the share below
    each of :data:`TAIL` with its count, quantiles, then the :data:`WORST` lowest engine IoUs
    by image index."""
    shares = "".join(f"{f'below {t}':>13}" for t in TAIL)
    lines = [
        f"\ntail ({name}, {len(rows)} images): share below each IoU (count), quantiles",
        f"{'':<24}{shares}{'min':>8}{'p10':>8}{'median':>8}",
    ]
    for key, label in IOUS:
        values = sorted(row[key] for row in rows)
        counts = [below(rows, key, t) for t in TAIL]
        cells = "".join(f"{f'{n / len(rows):.3f} ({n})':>13}" for n in counts)
        p10 = float(np.quantile(values, 0.1))
        lines.append(
            f"{label:<24}{cells}{values[0]:>8.3f}{p10:>8.3f}{statistics.median(values):>8.3f}"
        )
    lines += confidence_report(rows) + cause_report(rows)
    worst = sorted(rows, key=lambda row: (row["iou"], row["index"]))[:WORST]
    lines.append(f"worst {len(worst)} by engine IoU:")
    lines += [
        f"  index={row['index']} " + " ".join(f"{key}={row[key]:.3f}" for key, _ in IOUS)
        for row in worst
    ]
    return lines


CAUSES = ("orientation", "selection", "collapse", "partial", "texture")
"""Why an image failed (engine IoU below :data:`FAILURE`), the first that holds, in this order:
its picked partition was right with the prompts the other way round (``orientation``); another
run found the object (``selection``: one of the R runs' components reaches IoU 0.5); the mask
holds under a tenth of the object's area or nearly the whole image (``collapse``); the mask lies
mostly on the object but misses most of it (``partial``: precision ≥ 0.6); else the mask lies
mostly on the background, a partition by colour or texture (``texture``)."""


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """The IoU of two boolean masks (1 when both are empty)."""
    union = (pred | truth).sum()
    return float((pred & truth).sum() / union) if union else 1.0


def failure_cause(mask: np.ndarray, runs: np.ndarray, truth: np.ndarray) -> str:
    """The :data:`CAUSES` entry of a failed image: ``mask`` (H, W) the engine's foreground share,
    ``runs`` (R, L, H, W) every run's shares after the last update (before the choice),
    ``truth`` (H, W) the true object (bool)."""
    fg = mask > 0.5
    if iou(~fg, truth) >= FAILURE:
        return "orientation"
    if max(iou(part > 0.5, truth) for run in runs for part in run) >= FAILURE:
        return "selection"
    if fg.sum() < 0.1 * truth.sum() or fg.mean() > 0.95:
        return "collapse"
    if (fg & truth).sum() >= 0.6 * fg.sum():
        return "partial"
    return "texture"


def cause_report(rows: list[dict]) -> list[str]:
    """One line: how many failures each of :data:`CAUSES` explains (rows with a ``cause``)."""
    causes = [row["cause"] for row in rows if row.get("cause")]
    if not causes:
        return []
    counts = ", ".join(f"{c} {causes.count(c)}" for c in CAUSES)
    return [f"causes of the {len(causes)} failures (IoU < {FAILURE}): {counts}"]


CONFIDENCE = (
    "confidence_agreement",
    "confidence_margin",
    "confidence_connected",
    "confidence_score",
)
"""The engine's confidence figures a row may carry (``Layers.trace["confidence"]``)."""


def flags_failures(scores: list[float], failed: list[bool]) -> float | None:
    """The AUC of ``scores`` as a detector of the failures: the chance that a failed image scores
    lower than a good one (ties count half; scipy's Mann-Whitney U over the two groups), or
    ``None`` without both kinds."""
    from scipy.stats import mannwhitneyu

    bad = [s for s, f in zip(scores, failed, strict=True) if f]
    good = [s for s, f in zip(scores, failed, strict=True) if not f]
    if not bad or not good:
        return None
    return float(mannwhitneyu(good, bad).statistic / (len(good) * len(bad)))


def confidence_report(rows: list[dict]) -> list[str]:
    """How well the engine's confidence flags the failures (engine IoU below 0.5): the AUC of
    each figure, over the rows that carry them all."""
    kept = [r for r in rows if all(r.get(k) is not None for k in CONFIDENCE)]
    if not kept:
        return []
    failed = [r["iou"] < FAILURE for r in kept]
    scores = {k.removeprefix("confidence_"): [r[k] for r in kept] for k in CONFIDENCE}
    cells = []
    for name, values in scores.items():
        auc = flags_failures(values, failed)
        cells.append(f"{name} {'n/a' if auc is None else f'{auc:.3f}'}")
    return [
        f"confidence AUC for IoU < {FAILURE} ({sum(failed)} of {len(kept)}): " + ", ".join(cells)
    ]


def tail_figures(rows: list[dict]) -> str:
    """``iou_below_0.5=… iou_below_0.7=… matted_iou_below_0.5=…`` for the last line."""
    return " ".join(
        f"{key}_below_{t}={below(rows, key, t) / len(rows):.3f}" for key, _ in IOUS for t in TAIL
    )


def _titled(title: str, sheet: Image.Image) -> Image.Image:
    """``sheet`` under a one-line ``title``."""
    out = Image.new("RGB", (sheet.width, sheet.height + 16), "white")
    ImageDraw.Draw(out).text((6, 3), title, fill="black", font=ImageFont.load_default())
    out.paste(sheet, (0, 16))
    return out


def failure_sheet(sample: Composite, rows: list[tuple[str, Layers]]) -> Image.Image:
    """The truth's contact sheet (input, true mask, true layers) above one per ``(title,
    layers)`` of ``rows`` (the engine's, the matted ones), each titled."""
    image = Image.fromarray(sample.image)
    sheets = [
        _titled(title, contact_sheet(image, layer_images(layers)))
        for title, layers in [(f"truth: composite {sample.index}", truth_layers(sample)), *rows]
    ]
    out = Image.new("RGB", (max(s.width for s in sheets), sum(s.height for s in sheets)), "white")
    top = 0
    for sheet in sheets:
        out.paste(sheet, (0, top))
        top += sheet.height
    return out


def gallery_path(folder: Path, model: str, several: bool, index: int) -> Path:
    """Where a failure's sheet goes: ``folder/<index>.png`` (``folder/<model>/…`` with several
    models), the folder created."""
    where = folder / model if several else folder
    where.mkdir(parents=True, exist_ok=True)
    return where / f"{index}.png"


__all__ = [
    "CAUSES",
    "FAILURE",
    "IOUS",
    "TAIL",
    "WORST",
    "below",
    "cause_report",
    "failure_cause",
    "failure_sheet",
    "field_metrics",
    "gallery_path",
    "tail_figures",
    "tail_report",
    "truth_layers",
]
