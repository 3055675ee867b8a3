"""The layer engine's stages on several models side by side, on the same held-out composites (#27).

For each model and composite (the composites of ``decompose_quality.py``, the true prompts, seed =
index) the engine runs with the defaults, and its stages are scored against the true mask:

- **prompt errors**: each prompt's per-cell denoising error of the image (the orientation check's
  map, :meth:`_Sampler.prompt_errors`): its mean magnitude, and the AUC of ``error_bg − error_fg``
  against the true cells (0.5: no separation; 1: perfect);
- **latent**: the std of the image latent ``E(x)`` (the model's latent scale at work);
- **decoder cast**: the cells the object touches inpainted under the background prompt, decoded
  without anchoring: the error at kept pixels three cells or more from the hole (what the hole's
  content does to the rest of the image through the decoder), raw and anchored, and the
  background inpainted behind the object (PSNR against the true one), raw and anchored;
- **evidence**: the AUC of the pooled log-evidence ratio (fg − bg) of every update against the
  true pixels, averaged over the runs (update 1: the first update's evidence, from random masks);
- **variances**: each layer's calibrated variance (mean over pixels) at the last update, and the
  spread of the K samples alone (``--floor`` not included);
- **mask**: the IoU of every update's mask (fg share > 0.5) against the truth, best orientation,
  averaged over runs; and the final IoU;
- **selection**: the IoU of the run and orientation the engine picks, against the best run in its
  best orientation (oracle), and how often the orientation check gives the picked run its better
  orientation;
- **truth start** (``--truth``): the engine started from the true mask (one run); its IoU after the
  updates says whether the truth is a fixed point of the update.

    python benchmarks/engine_diagnosis.py --model mini,PATH/TO/mini-gpu-wide --n 20

Engine options go as in ``decompose_quality.py``: generated from :class:`DecomposeConfig`
(``--noise-level 0.5``; ``--help`` lists them; matting is off, the engine's own layers are
scored), and ``--device`` from :class:`ModelOptions`. The last line is
``<model>: iou=… oracle=… evidence_auc=… errors_auc=…`` for each model.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from layerdecomp.data.composites import make_composite
from layerdecomp.layers import engine
from layerdecomp.layers.stats import anchor_to_kept
from layerdecomp.models import load_model
from layerdecomp.options import configure
from layerdecomp.tasks.decompose import DecomposeConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    model_list,  # noqa: E402
    quiet_libraries,
    to_tensor,
)
from _config_args import add_config_arguments, config_overrides, parse_config  # noqa: E402
from decompose_quality import iou  # noqa: E402

from layerdecomp.models.options import ModelOptions  # noqa: E402


def auc(score: np.ndarray, truth: np.ndarray) -> float:
    """The probability that a true pixel scores above a false one (Mann-Whitney, ties half)."""
    score, truth = score.ravel(), truth.ravel().astype(bool)
    pos, neg = truth.sum(), (~truth).sum()
    if not pos or not neg:
        return float("nan")
    ranks = np.empty(len(score))
    order = score.argsort(kind="mergesort")
    ranks[order] = np.arange(1, len(score) + 1)
    for value in np.unique(score[np.diff(np.sort(score), prepend=np.inf) == 0]):
        tied = score == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[truth].sum() - pos * (pos + 1) / 2) / (pos * neg))


def oriented_iou(fg: np.ndarray, truth: np.ndarray) -> float:
    return max(iou(fg > 0.5, truth), iou(fg < 0.5, truth))


def diagnose(backend, index: int, split: str, size: int, config, truth_start: bool) -> dict:
    sample = make_composite(index, split, size=size)
    truth = sample.alpha > 0.5
    image = to_tensor(sample.image).to(backend.device)
    prompts = (sample.caption_fg, sample.caption_bg)
    row: dict = {}
    updates: list[dict] = []

    last: dict = {}

    def record(info: dict) -> None:
        last.update(info)
        fg = info["mask"][:, 0].cpu().numpy()
        evidence = info["evidence"]
        ratio = (evidence[:, 0] - evidence[:, 1]).cpu().numpy()
        updates.append(
            {
                "iou": statistics.mean(oriented_iou(m, truth) for m in fg),
                "auc": statistics.mean(
                    max(auc(r, truth), 1 - auc(r, truth)) for r in ratio
                ),  # either orientation: EM may find the swapped partition
                "var": [float(var.mean()) for _, var in info["stats"]],
            }
        )

    generator = torch.Generator(device=backend.device).manual_seed(index)
    layers = engine.decompose(
        backend, image, *prompts, config=config, generator=generator, disable=True, callback=record
    )
    final = layers.masks[0, 0].cpu().numpy()
    row["iou"] = iou(final > 0.5, truth)
    row["updates"] = updates
    # the runs' last masks: the best run in its best orientation, and what the selection picked
    per_run = [(iou(m > 0.5, truth), iou(m < 0.5, truth)) for m in last["mask"][:, 0].cpu().numpy()]
    best = max(max(pair) for pair in per_run)
    row["oracle"], row["picked"] = best, per_run[layers.run][int(layers.order != [0, 1])]
    row["orient_right"] = float(row["picked"] == max(per_run[layers.run]))
    row["chosen_best_run"] = float(max(per_run[layers.run]) == best)
    # prompt errors (a separate draw of the same map) and the latent scale
    generator = torch.Generator(device=backend.device).manual_seed(10_000 + index)
    sampler = engine._Sampler(backend, image, prompts, config, generator)
    errors = sampler.prompt_errors(config.orient_levels)
    factor = sampler.factor
    cells = F.avg_pool2d(torch.from_numpy(sample.alpha).float()[None, None], factor)[0, 0] > 0.5
    gain = (errors[1, 0] - errors[0, 0]).cpu().numpy()
    row["errors_auc"] = auc(gain, cells.numpy())
    row["errors_mean"] = float(errors.mean())
    row["errors_gap"] = float(
        abs(gain[cells.numpy()].mean() - gain[~cells.numpy()].mean())
        if cells.any() and (~cells).any()
        else float("nan")
    )
    row["latent_std"] = float(sampler.y.std())
    row.update(decoder_cast(backend, image, prompts, config, sample, factor))
    row["run"] = layers.run
    row["swapped"] = layers.order != [0, 1]
    if truth_start:
        generator = torch.Generator(device=backend.device).manual_seed(index)
        alpha = torch.from_numpy(sample.alpha).float()[None, None].to(backend.device)
        start = engine.decompose(
            backend,
            image,
            *prompts,
            config=configure(DecomposeConfig, config, {"runs": 1, "orient": False}),
            generator=generator,
            disable=True,
            init_mask=alpha,
        )
        row["truth_start"] = iou(start.masks[0, 0].cpu().numpy() > 0.5, truth)
    return row


def decoder_cast(backend, image, prompts, config, sample, factor: int) -> dict:
    """The decoder's colour cast: every cell the object touches is held out and inpainted under
    the background prompt; the squared error (summed over RGB) at the kept pixels, far from the
    hole (≥ 3 cells away), raw and anchored (:func:`~layerdecomp.layers.stats.anchor_to_kept`);
    and the inpainted background's PSNR behind the object, raw and anchored."""
    alpha = torch.from_numpy(sample.alpha).float()[None, None].to(image.device)
    touched = F.max_pool2d(alpha, factor) > 0
    keep = (~touched).float().repeat(len(prompts), 1, 1, 1)
    generator = torch.Generator(device=backend.device).manual_seed(20_000)
    raw = configure(DecomposeConfig, config, {"anchor": False})
    samples = engine._Sampler(backend, image, prompts, raw, generator).draw(keep)[-1:]
    kept = F.interpolate(keep[-1:], scale_factor=factor)
    far = 1 - F.max_pool2d(1 - kept, 6 * factor + 1, 1, 3 * factor)
    anchored = anchor_to_kept(samples, image, keep[-1:], factor)
    behind = torch.from_numpy(sample.bg).permute(2, 0, 1)[None].float().to(image.device)
    behind, hidden = behind / 127.5 - 1, (alpha > 0.5).expand(-1, 3, -1, -1)

    def far_error(pixels):
        error = (pixels - image).pow(2).sum(1, keepdim=True)
        return float((error * far).sum() / far.sum()) if far.any() else float("nan")

    def hidden_db(pixels):
        mse = (pixels - behind)[hidden].pow(2).mean()
        return float(10 * torch.log10(4 / mse.clamp_min(1e-12)))

    return {
        "cast_raw": far_error(samples),
        "cast_anchored": far_error(anchored),
        "hidden_raw": hidden_db(samples),
        "hidden_anchored": hidden_db(anchored),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", action="append", default=None, help="a model (repeat, or a comma list)"
    )
    parser.add_argument("--n", type=int, default=20, help="the first N held-out composites")
    parser.add_argument("--start", type=int, default=0, help="the first composite's index")
    parser.add_argument("--split", default="heldout", choices=["heldout", "novel", "train"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--truth", action="store_true", help="also start from the true mask")
    placing = add_config_arguments(parser, ModelOptions, only=("device",))
    engine_options = add_config_arguments(parser, DecomposeConfig, ("matting",))
    args = parser.parse_args(argv)
    overrides = config_overrides(args, engine_options)
    # the stages are scored on the engine's own layers: no matting
    config = parse_config(parser, DecomposeConfig, args, engine_options, {"matting": False})
    device = parse_config(parser, ModelOptions, args, placing).device
    quiet_libraries()
    models = model_list(args.model)
    table: dict[str, list[dict]] = {}
    for spec in models:
        backend = load_model(spec, device=device)
        rows = []
        for index in range(args.start, args.start + args.n):
            row = diagnose(backend, index, args.split, args.size, config, args.truth)
            rows.append(row)
            print(
                f"  {Path(spec).name} #{index}: iou {row['iou']:.2f} picked {row['picked']:.2f} "
                f"oracle {row['oracle']:.2f} errors_auc {row['errors_auc']:.2f} "
                f"evidence_auc {row['updates'][-1]['auc']:.2f}"
                + (f" truth_start {row['truth_start']:.2f}" if args.truth else ""),
                flush=True,
            )
        table[Path(spec).name] = rows

    names = list(table)

    def mean(name, key):
        values = [r[key] for r in table[name] if np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    def per_update(name, key, step):
        values = [r["updates"][min(step, len(r["updates"]) - 1)][key] for r in table[name]]
        return statistics.mean(values)

    print(
        f"\nsplit={args.split} composites {args.start}–{args.start + args.n - 1} size={args.size} "
        f"config={overrides or 'defaults'}"
    )
    width = max(12, *(len(n) for n in names))
    print(f"{'stage':<40}" + "".join(f"{n:>{width + 2}}" for n in names))
    lines = [
        ("latent std of E(x)", lambda n: mean(n, "latent_std"), ".3f"),
        ("prompt error, mean per cell", lambda n: mean(n, "errors_mean"), ".4f"),
        ("prompt error gap fg vs bg cells", lambda n: mean(n, "errors_gap"), ".4f"),
        ("prompt errors: AUC vs truth", lambda n: mean(n, "errors_auc"), ".3f"),
        ("decoder cast far from a hole, raw", lambda n: mean(n, "cast_raw"), ".4f"),
        ("decoder cast far from a hole, anchored", lambda n: mean(n, "cast_anchored"), ".4f"),
        ("background behind the object dB, raw", lambda n: mean(n, "hidden_raw"), ".2f"),
        ("… anchored", lambda n: mean(n, "hidden_anchored"), ".2f"),
    ]
    steps = max(len(r["updates"]) for rows in table.values() for r in rows)
    for step in sorted({0, 1, 3, steps - 1}):
        for what, key in (("evidence AUC", "auc"), ("mask IoU (runs)", "iou")):
            value = lambda n, s=step, k=key: per_update(n, k, s)  # noqa: E731
            lines.append((f"update {step + 1}: {what}", value, ".3f"))
    lines += [
        ("last update: fg variance", lambda n: _var(table[n], 0), ".4f"),
        ("last update: bg variance", lambda n: _var(table[n], 1), ".4f"),
        ("best run, best orientation", lambda n: mean(n, "oracle"), ".3f"),
        ("picked run and orientation", lambda n: mean(n, "picked"), ".3f"),
        ("picked run is the best run", lambda n: mean(n, "chosen_best_run"), ".2f"),
        ("orientation check right", lambda n: mean(n, "orient_right"), ".2f"),
        ("final IoU", lambda n: mean(n, "iou"), ".3f"),
    ]
    if args.truth:
        lines.append(("from the true mask: IoU", lambda n: mean(n, "truth_start"), ".3f"))
    for label, value, fmt in lines:
        print(f"{label:<40}" + "".join(f"{value(n):>{width + 2}{fmt}}" for n in names))
    print(
        " ".join(
            f"{n}: iou={mean(n, 'iou'):.3f} oracle={mean(n, 'oracle'):.3f} "
            f"evidence_auc={per_update(n, 'auc', steps - 1):.3f} "
            f"errors_auc={mean(n, 'errors_auc'):.3f}"
            for n in names
        )
    )


def _var(rows, layer):
    return statistics.mean(r["updates"][-1]["var"][layer] for r in rows)


if __name__ == "__main__":
    main()
