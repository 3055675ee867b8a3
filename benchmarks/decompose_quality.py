"""Layer decomposition on held-out composites with ground truth, beside GrabCut and k-means (§4.2).

For each composite (an emoji over a texture; alpha, foreground and full background known) the
engine runs with the true prompts, and two classical baselines run on the same image: OpenCV's
GrabCut initialised with the image minus a margin, and 2-cluster k-means in Lab (the cluster that
touches the border less is the foreground). Metrics: IoU of mask > 0.5 against alpha > 0.5, for
the engine's own mask and for the matted alpha that ``decompose`` returns by default, SAD
(sum of |m − α| per image), recomposition PSNR, background PSNR in the hidden region (α > 0.5)
against the true background, and seconds per image. Beside them the field's per-layer metrics
(LayerD, Qwen-Image-Layered on Crello; docs/metrics.md, :mod:`layerdecomp.layers.metrics`), for
the engine's layers and the matted ones: the foreground's soft alpha IoU, Σ min(α, α*) / Σ max(α,
α*), and the alpha-weighted RGB L1 of the foreground and of the background, the latter against
the composite's complete background (its hidden part included).

The tail: per model, the share of images whose IoU (engine, and matted) is below 0.5 and 0.7,
the minimum, 10th percentile and median, and the ten lowest engine IoUs by composite index
(``index=<i> iou=<x> matted_iou=<m>``). ``--gallery DIR`` writes, for every composite whose engine
IoU is below 0.5, ``DIR/<index>.png`` (``DIR/<model>/<index>.png`` with several models): the
contact sheets of the truth (input, true mask, true layers), of the engine's layers and of the
matted ones, one above the other.

Engine options are generated from :class:`DecomposeConfig` (``--updates 3``, ``--orient-by
inpainting``, ``--anchor no``), each with the field's type, choices and help (``--help`` lists
them; an earlier name, ``--iterations``, is refused naming the new one); ``matting`` is the
benchmark's own (both the
engine's layers and the matted ones are scored). ``--no-baselines`` skips GrabCut and k-means
(their figures print as nan).

``--matting`` adds, per image, :func:`layerdecomp.layers.matting.matte` applied to the engine's
layers (one row per ``--bands`` value), and alpha-matting errors against the true alpha for the
engine's mask and for the matted alpha, over the whole image: SAD = Σ|α − α*| / 1000 (thousands,
the usual unit of matting benchmarks), MSE = mean (α − α*)², and the gradient error of Rhemann et
al. 2009 = Σ (|∇α| − |∇α*|)² / 1000 with Gaussian-derivative gradients of σ = 1.4 px
(``scipy.ndimage.gaussian_gradient_magnitude``); means over the images, and the median SAD;
"better" counts the images whose SAD matting lowers. ``--bands`` are in the engine's working
pixels (``matte``'s ``band``), ``--sure`` is ``matte``'s ``sure``.

    pip install opencv-python-headless    # GrabCut and k-means (the `bench` extra)
    python benchmarks/decompose_quality.py --n 100
    python benchmarks/decompose_quality.py --n 50 --model mini,PATH/TO/mini-gpu-wide
    python benchmarks/decompose_quality.py --n 24 --matting
    python benchmarks/decompose_quality.py --n 100 --gallery failures/
    python benchmarks/decompose_quality.py --layers 3 --n 12    # decompose_layers.py's table

``--layers 3`` runs ``decompose_layers.py`` instead (three layers on two-object composites, joint
against the two-layer engine run twice; see its docstring) with ``--model``, ``--n``, ``--split``,
``--size`` and ``--device``.

Several models (``--model mini --model PATH`` or ``--model mini,PATH``) run on the same composites
and print side by side (GrabCut and k-means once; matting tables per model).

The last line is ``iou=<x> matted_iou=<m> grabcut_iou=<y> kmeans_iou=<z> seconds=<s>``, with
``--matting`` followed by ``engine_sad= matting_sad= engine_sad_median= matting_sad_median=
engine_mse= matting_mse= engine_grad= matting_grad= matting_better= matting_seconds=``
(the first band's), then ``soft_iou= matted_soft_iou= fg_l1= matted_fg_l1= bg_l1=
matted_bg_l1= iou_below_0.5= iou_below_0.7= matted_iou_below_0.5= matted_iou_below_0.7=``;
with several models one such line per model, each starting ``model=<name>``, the last model's
last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _layer_report as report  # noqa: E402
from _common import add_model_option, model_list  # noqa: E402
from _config_args import add_config_arguments, config_overrides  # noqa: E402
from _layer_report import iou  # noqa: E402

from layerdecomp.data.composites import make_composite  # noqa: E402
from layerdecomp.errors import InputError  # noqa: E402
from layerdecomp.io import image_to_tensor  # noqa: E402
from layerdecomp.layers.matting import DEFAULT_BAND, SURE, matte  # noqa: E402
from layerdecomp.models import load_model  # noqa: E402
from layerdecomp.options import configure  # noqa: E402
from layerdecomp.tasks.decompose import DecomposeConfig, decompose_image  # noqa: E402

SET_HERE = ("matting",)
"""Engine options the benchmark sets itself: it scores the engine's own layers and matted ones."""


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8-range arrays (optionally over a boolean region)."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is not None:
        if not where.any():
            return float("nan")
        diff = diff[where]
    mse = diff.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def alpha_errors(alpha: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """SAD / 1000, MSE and the gradient error / 1000 (σ = 1.4) of an alpha against the truth."""
    from scipy.ndimage import gaussian_gradient_magnitude

    alpha, truth = alpha.astype(np.float64), truth.astype(np.float64)
    grad = gaussian_gradient_magnitude(alpha, 1.4) - gaussian_gradient_magnitude(truth, 1.4)
    return {
        "sad": float(np.abs(alpha - truth).sum() / 1000),
        "mse": float(((alpha - truth) ** 2).mean()),
        "grad": float((grad**2).sum() / 1000),
    }


def grabcut(image: np.ndarray, margin: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    mx, my = max(1, round(margin * w)), max(1, round(margin * h))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # its GMM init draws from OpenCV's global RNG: the same figure every run
    cv2.grabCut(
        image[..., ::-1].copy(),
        mask,
        (mx, my, w - 2 * mx, h - 2 * my),
        bgd,
        fgd,
        5,
        cv2.GC_INIT_WITH_RECT,
    )
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def kmeans_lab(image: np.ndarray) -> np.ndarray:
    import cv2
    import kornia

    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    lab = kornia.color.rgb_to_lab(rgb)[0].permute(1, 2, 0).reshape(-1, 3).numpy()
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3)
    cv2.setRNGSeed(0)
    _, labels, _ = cv2.kmeans(lab.astype(np.float32), 2, None, criteria, 3, cv2.KMEANS_PP_CENTERS)
    labels = labels.reshape(image.shape[:2])
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    background = np.bincount(border, minlength=2).argmax()
    return labels != background


def evaluate(
    backend, name: str, args, config, baselines: dict[int, dict], several: bool = False
) -> list[dict]:
    """One model's rows over the composites; GrabCut and k-means, which do not depend on the
    model, are computed once per composite (``baselines``, filled by the first model). With
    ``args.gallery``, every composite whose engine IoU is below ``report.FAILURE`` gets a sheet
    there (in a folder per model when ``several`` models run)."""
    from PIL import Image

    rows = []
    for index in args.indices or range(args.first, args.first + args.n):
        sample = make_composite(index, args.split, size=args.size)
        truth = sample.alpha > 0.5
        start, last = time.perf_counter(), {}
        layers = decompose_image(
            backend,
            Image.fromarray(sample.image),
            sample.caption_fg,
            sample.caption_bg,
            seed=index,
            config=config,
            disable=True,
            matting=False,  # the engine's own layers; --matting mattes them below
            callback=lambda state, last=last: last.update(runs=state["mask"]),
        )
        seconds = time.perf_counter() - start
        mask = layers.mask[0, 0].cpu().numpy()
        to_u8 = lambda t: ((t[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255)  # noqa: E731
        hidden = np.repeat(truth[..., None], 3, axis=2)
        tensor = image_to_tensor(Image.fromarray(sample.image)).to(layers.images.device)
        # what `decompose` gives by default: the engine's layers matted at their edges
        matted = matte(tensor, layers)
        matted_mask = matted.mask[0, 0].cpu().numpy()
        row = {
            "matted_iou": iou(matted_mask > 0.5, truth),
            # how far matting moved the engine's mask (a matting that loses the object shows here)
            "matted_engine_iou": iou(matted_mask > 0.5, mask > 0.5),
        }
        true_layers = report.truth_layers(sample)
        row.update(report.field_metrics(layers, true_layers))
        row.update(report.field_metrics(matted, true_layers, "matted_"))
        if args.matting:
            row.update({f"engine_{k}": v for k, v in alpha_errors(mask, sample.alpha).items()})
            for band in args.bands:
                begin = time.perf_counter()
                matted = matte(tensor, layers, band=band, sure=args.sure)
                row[f"matting{band}_seconds"] = time.perf_counter() - begin
                alpha = matted.mask[0, 0].cpu().numpy()
                errors = alpha_errors(alpha, sample.alpha)
                row.update({f"matting{band}_{k}": v for k, v in errors.items()})
                row[f"matting{band}_better"] = float(errors["sad"] < row["engine_sad"])
        if index not in baselines and args.no_baselines:
            baselines[index] = {"grabcut_iou": float("nan"), "kmeans_iou": float("nan")}
        elif index not in baselines:
            baselines[index] = {
                "grabcut_iou": iou(grabcut(sample.image, args.margin), truth),
                "kmeans_iou": iou(kmeans_lab(sample.image), truth),
            }
        rows.append(
            {
                **row,
                **baselines[index],
                "index": index,
                "iou": iou(mask > 0.5, truth),
                "sad": float(np.abs(mask - sample.alpha).sum()),
                "recomposition_psnr": psnr(to_u8(layers.recomposition), sample.image),
                "background_psnr": psnr(to_u8(layers.background), sample.bg, hidden),
                "seconds": seconds,
                "swapped": layers.swapped,
                **{f"confidence_{k}": v for k, v in layers.trace["confidence"].items()},
            }
        )
        if rows[-1]["iou"] < report.FAILURE:
            runs = torch.nn.functional.interpolate(last["runs"], size=mask.shape, mode="nearest")
            runs = runs.cpu().numpy()
            rows[-1]["cause"] = report.failure_cause(mask, runs, truth)
        if args.gallery and rows[-1]["iou"] < report.FAILURE:
            sheet = report.failure_sheet(
                sample,
                [
                    (f"engine ({name}): IoU {rows[-1]['iou']:.3f}", layers),
                    (f"matted (default): IoU {row['matted_iou']:.3f}", matted),
                ],
            )
            sheet.save(report.gallery_path(args.gallery, name, several, index))
        if len(rows) % 10 == 0:
            print(
                f"  {name} {len(rows)}/{args.n}: iou so far "
                f"{statistics.mean(r['iou'] for r in rows):.3f}",
                flush=True,
            )
    return rows


def mean_of(rows: list[dict], key: str, average=statistics.mean) -> float:
    values = [r[key] for r in rows if np.isfinite(r[key])]
    return average(values) if values else float("nan")


def side_by_side(table: dict[str, list[dict]], lines: list[tuple[str, str, str]]) -> None:
    """Print ``lines`` (label, key, format) with one column per model."""
    width = max(10, *(len(name) for name in table))
    print(f"{'':<22}" + "".join(f"{name:>{width + 2}}" for name in table))
    for label, key, fmt in lines:
        cells = "".join(f"{mean_of(rows, key):>{width + 2}{fmt}}" for rows in table.values())
        print(f"{label:<22}{cells}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser, "side by side")
    parser.add_argument("--n", type=int, default=100, help="how many composites (from --first)")
    parser.add_argument("--first", type=int, default=0, help="start at this composite's index")
    parser.add_argument("--indices", type=int, nargs="+", help="these composites instead")
    parser.add_argument("--rows", type=Path, help="write every composite's figures to this JSON")
    parser.add_argument("--split", default="heldout", choices=["heldout", "novel", "train"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--margin", type=float, default=0.05, help="GrabCut's rectangle margin")
    parser.add_argument("--device", default=None)
    parser.add_argument("--matting", action="store_true", help="also matte the engine's layers")
    parser.add_argument(
        "--bands", type=int, nargs="+", default=[DEFAULT_BAND], help="matting's trimap bands"
    )
    parser.add_argument("--sure", type=float, default=SURE, help="matting's sure share")
    parser.add_argument(
        "--no-baselines", action="store_true", help="skip GrabCut and k-means (need opencv)"
    )
    parser.add_argument(
        "--gallery", type=Path, help=f"write a sheet per composite of IoU < {report.FAILURE} here"
    )
    parser.add_argument("--layers", type=int, default=2, choices=[2, 3])
    engine = add_config_arguments(parser, DecomposeConfig, SET_HERE)
    args = parser.parse_args(argv)
    args.n = len(args.indices) if args.indices else args.n
    models = model_list(args.model)
    if args.layers == 3:
        import decompose_layers

        split = args.split if args.split != "train" else "heldout"
        return decompose_layers.main(
            [arg for model in models for arg in ("--model", model)]
            + ["--n", str(args.n), "--split", split, "--size", str(args.size)]
            + (["--device", args.device] if args.device else [])
        )
    overrides = config_overrides(args, engine)
    try:
        config = configure(DecomposeConfig, None, overrides)
    except InputError as exc:
        parser.error(str(exc))
    baselines: dict[int, dict] = {}
    table: dict[str, list[dict]] = {}
    devices = set()
    for model in models:
        backend = load_model(model, device=args.device)
        devices.add(str(backend.device))
        name = Path(model).name
        table[name] = evaluate(backend, name, args, config, baselines, len(models) > 1)

    print(
        f"models={','.join(models)} split={args.split} n={args.n} first={args.first} "
        f"size={args.size} "
        f"device={','.join(sorted(devices))} config={overrides or 'defaults'}"
    )
    side_by_side(
        table,
        [
            ("IoU, engine", "iou", ".3f"),
            ("IoU, matted (default)", "matted_iou", ".3f"),
            ("SAD", "sad", ".1f"),
            ("recomposition dB", "recomposition_psnr", ".2f"),
            ("bg hidden dB", "background_psnr", ".2f"),
            ("s/image", "seconds", ".2f"),
            ("soft IoU, engine", "soft_iou", ".3f"),
            ("soft IoU, matted", "matted_soft_iou", ".3f"),
            ("fg RGB L1, engine", "fg_l1", ".4f"),
            ("fg RGB L1, matted", "matted_fg_l1", ".4f"),
            ("bg RGB L1, engine", "bg_l1", ".4f"),
            ("bg RGB L1, matted", "matted_bg_l1", ".4f"),
        ],
    )
    first = next(iter(table.values()))
    print(f"{'grabcut':<22}{mean_of(first, 'grabcut_iou'):>12.3f}")
    print(f"{'kmeans':<22}{mean_of(first, 'kmeans_iou'):>12.3f}")
    for name, rows in table.items():
        print("\n".join(report.tail_report(name, rows)))
    if args.matting:
        median = statistics.median
        for name, rows in table.items():
            print(f"\nmatting ({name}): sure={args.sure}; means, and the median SAD")
            print(
                f"{'alpha':<18} {'SAD/1000':>9} {'median':>8} {'MSE':>8} {'grad/1000':>10} "
                f"{'better':>7} {'s/image':>8}"
            )
            print(
                f"{'engine mask':<18} {mean_of(rows, 'engine_sad'):>9.4f} "
                f"{mean_of(rows, 'engine_sad', median):>8.4f} "
                f"{mean_of(rows, 'engine_mse'):>8.4f} {mean_of(rows, 'engine_grad'):>10.4f}"
            )
            for band in args.bands:
                key = f"matting{band}"
                better = sum(r[f"{key}_better"] for r in rows)
                print(
                    f"{f'matting, band {band}':<18} {mean_of(rows, key + '_sad'):>9.4f} "
                    f"{mean_of(rows, key + '_sad', median):>8.4f} "
                    f"{mean_of(rows, key + '_mse'):>8.4f} {mean_of(rows, key + '_grad'):>10.4f} "
                    f"{f'{better:.0f}/{len(rows)}':>7} {mean_of(rows, key + '_seconds'):>8.2f}"
                )
    if args.rows:
        args.rows.write_text(json.dumps(table, indent=1) + "\n")
    for name, rows in table.items():
        print((f"model={name} " if len(table) > 1 else "") + last_line(rows, args))


def last_line(rows: list[dict], args) -> str:
    """``iou= matted_iou= grabcut_iou= kmeans_iou= seconds=`` (``--matting``: its figures)."""
    line = (
        f"iou={mean_of(rows, 'iou'):.3f} matted_iou={mean_of(rows, 'matted_iou'):.3f} "
        f"grabcut_iou={mean_of(rows, 'grabcut_iou'):.3f} "
        f"kmeans_iou={mean_of(rows, 'kmeans_iou'):.3f} seconds={mean_of(rows, 'seconds'):.2f}"
    )
    if args.matting:
        median = statistics.median
        key = f"matting{args.bands[0]}"
        line += (
            f" engine_sad={mean_of(rows, 'engine_sad'):.4f}"
            f" matting_sad={mean_of(rows, key + '_sad'):.4f}"
            f" engine_sad_median={mean_of(rows, 'engine_sad', median):.4f}"
            f" matting_sad_median={mean_of(rows, key + '_sad', median):.4f}"
            f" engine_mse={mean_of(rows, 'engine_mse'):.4f}"
            f" matting_mse={mean_of(rows, key + '_mse'):.4f}"
            f" engine_grad={mean_of(rows, 'engine_grad'):.4f}"
            f" matting_grad={mean_of(rows, key + '_grad'):.4f}"
            f" matting_better={mean_of(rows, key + '_better'):.3f}"
            f" matting_seconds={mean_of(rows, key + '_seconds'):.2f}"
        )
    figures = ("soft_iou", "matted_soft_iou", "fg_l1", "matted_fg_l1", "bg_l1", "matted_bg_l1")
    line += "".join(f" {key}={mean_of(rows, key):.4f}" for key in figures)
    return f"{line} {report.tail_figures(rows)}"


if __name__ == "__main__":
    main()
