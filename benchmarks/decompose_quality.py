"""Layer decomposition on held-out composites with ground truth, beside GrabCut and k-means (§4.2).

For each composite (an emoji over a texture; alpha, foreground and full background known) the
engine runs with the true prompts, and two classical baselines run on the same image: OpenCV's
GrabCut initialised with the image minus a margin, and 2-cluster k-means in Lab (the cluster that
touches the border less is the foreground). Metrics: IoU of mask > 0.5 against alpha > 0.5, SAD
(sum of |m − α| per image), recomposition PSNR, background PSNR in the hidden region (α > 0.5)
against the true background, and seconds per image.

    pip install opencv-python-headless    # GrabCut and k-means (the `bench` extra)
    python benchmarks/decompose_quality.py --n 100

The last line is ``iou=<x> grabcut_iou=<y> kmeans_iou=<z> seconds=<s>``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from layerdecomp.data.composites import make_composite
from layerdecomp.models import load_model
from layerdecomp.tasks.decompose import DecomposeConfig, decompose_image


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB of uint8-range arrays (optionally over a boolean region)."""
    diff = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    if where is not None:
        if not where.any():
            return float("nan")
        diff = diff[where]
    mse = diff.mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    union = (pred | truth).sum()
    return float((pred & truth).sum() / union) if union else 1.0


def grabcut(image: np.ndarray, margin: float) -> np.ndarray:
    import cv2

    h, w = image.shape[:2]
    mx, my = max(1, round(margin * w)), max(1, round(margin * h))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mini")
    parser.add_argument("--n", type=int, default=100, help="the first N held-out composites")
    parser.add_argument("--split", default="heldout", choices=["heldout", "novel"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--margin", type=float, default=0.05, help="GrabCut's rectangle margin")
    parser.add_argument("--device", default=None)
    for field_name in ("iterations", "samples", "newton_iters"):
        parser.add_argument(f"--{field_name.replace('_', '-')}", type=int, default=None)
    for field_name in ("noise_level", "guidance", "damping", "smoothing"):
        parser.add_argument(f"--{field_name.replace('_', '-')}", type=float, default=None)
    args = parser.parse_args(argv)
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in DecomposeConfig.__dataclass_fields__ and v is not None
    }
    config = DecomposeConfig(**overrides)
    backend = load_model(args.model, device=args.device)
    from PIL import Image

    rows = []
    for index in range(args.n):
        sample = make_composite(index, args.split, size=args.size)
        truth = sample.alpha > 0.5
        start = time.perf_counter()
        layers = decompose_image(
            backend,
            Image.fromarray(sample.image),
            sample.caption_fg,
            sample.caption_bg,
            seed=index,
            config=config,
            disable=True,
        )
        seconds = time.perf_counter() - start
        mask = layers.mask[0, 0].cpu().numpy()
        to_u8 = lambda t: ((t[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255)  # noqa: E731
        hidden = np.repeat(truth[..., None], 3, axis=2)
        rows.append(
            {
                "iou": iou(mask > 0.5, truth),
                "sad": float(np.abs(mask - sample.alpha).sum()),
                "recomposition_psnr": psnr(to_u8(layers.recomposition), sample.image),
                "background_psnr": psnr(to_u8(layers.background), sample.bg, hidden),
                "seconds": seconds,
                "grabcut_iou": iou(grabcut(sample.image, args.margin), truth),
                "kmeans_iou": iou(kmeans_lab(sample.image), truth),
            }
        )
        if (index + 1) % 10 == 0:
            print(
                f"  {index + 1}/{args.n}: iou so far {statistics.mean(r['iou'] for r in rows):.3f}",
                flush=True,
            )

    def mean(key):
        values = [r[key] for r in rows if np.isfinite(r[key])]
        return statistics.mean(values) if values else float("nan")

    print(
        f"model={args.model} split={args.split} n={args.n} size={args.size} "
        f"device={backend.device} config={overrides or 'defaults'}"
    )
    print(
        f"{'method':<10} {'IoU':>7} {'SAD':>8} {'recomp dB':>10} {'bg hidden dB':>13} "
        f"{'s/image':>8}"
    )
    print(
        f"{'ours':<10} {mean('iou'):>7.3f} {mean('sad'):>8.1f} {mean('recomposition_psnr'):>10.2f} "
        f"{mean('background_psnr'):>13.2f} {mean('seconds'):>8.2f}"
    )
    print(f"{'grabcut':<10} {mean('grabcut_iou'):>7.3f}")
    print(f"{'kmeans':<10} {mean('kmeans_iou'):>7.3f}")
    print(
        f"iou={mean('iou'):.3f} grabcut_iou={mean('grabcut_iou'):.3f} "
        f"kmeans_iou={mean('kmeans_iou'):.3f} seconds={mean('seconds'):.2f}"
    )


if __name__ == "__main__":
    main()
