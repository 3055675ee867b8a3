"""The README's inpainting and super-resolution figures on ``mini``, next to honest baselines.

Inpainting: the single-object examples (``examples/*.png``, 128 px: twice mini's native side),
a centred 48 × 48 hole, no prompt (the authors' setting); the hole filled by OpenCV's Telea
inpainting (the classical baseline; ``pip install -e '.[bench]'``), by ``inpaint`` at its
default (the model's native size for an image larger than it: 64 px here) and at the image's own
size (``work_side=0``: 4x mini's native pixels). PSNR inside the hole against the example.

Super-resolution: each example reduced to 16 px (antialiased bicubic), then ×4 to mini's native
64 px by bicubic upsampling (the baseline) and by ``superres`` (the authors' setting: K = 10,
constant λ = 0.1). PSNR against the example reduced to 64 px.

Writes ``docs/first_use_inpaint.png`` and ``docs/first_use_superres.png`` (the fox, 3x nearest
enlarged) unless ``--no-figures``; prints one table per task and a last line of means.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("fox_stripes.png", "rabbit_dots.png", "apple_checks.png")
HOLE = (40, 40, 88, 88)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def telea(image: Image.Image, mask: Image.Image) -> Image.Image | None:
    try:
        import cv2
    except ImportError:
        return None
    filled = cv2.inpaint(
        np.asarray(image)[..., ::-1].copy(), np.asarray(mask), 3, cv2.INPAINT_TELEA
    )
    return Image.fromarray(filled[..., ::-1].copy())


def row(images: list[Image.Image], labels: list[str], side: int) -> Image.Image:
    """The images side by side, each enlarged (nearest) to ``side``, a label under each."""
    sheet = Image.new("RGB", (side * len(images), side + 16), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        sheet.paste(image.resize((side, side), Image.NEAREST), (i * side, 0))
        draw.text((i * side + 4, side + 2), label, fill="black")
    return sheet


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-figures", action="store_true")
    args = parser.parse_args(argv)

    from layerdecomp.models import load_model
    from layerdecomp.tasks import inpaint, superres

    backend = load_model("mini", device="cpu")
    mask = Image.new("L", (128, 128), 0)
    mask.paste(255, HOLE)
    hole = np.asarray(mask) > 0
    print("| image | Telea | mini, native 64 px (default) | mini, own 128 px | seconds |")
    print("| --- | --- | --- | --- | --- |")
    means: dict[str, list[float]] = {}
    figures = {}
    for name in EXAMPLES:
        image = Image.open(ROOT / "examples" / name).convert("RGB")
        truth = np.asarray(image)[hole]
        start = time.perf_counter()
        native = inpaint(backend, image, mask, seed=args.seed, disable_progress=True).image
        mid = time.perf_counter()
        own = inpaint(backend, image, mask, seed=args.seed, work_side=0, disable_progress=True)
        end = time.perf_counter()
        classic = telea(image, mask)
        scores = {
            "telea": psnr(np.asarray(classic)[hole], truth) if classic else float("nan"),
            "native": psnr(np.asarray(native)[hole], truth),
            "own": psnr(np.asarray(own.image)[hole], truth),
        }
        for key, value in scores.items():
            means.setdefault(f"inpaint_{key}", []).append(value)
        print(
            f"| {name} | {scores['telea']:.2f} dB | {scores['native']:.2f} dB | "
            f"{scores['own']:.2f} dB | {mid - start:.1f} / {end - mid:.1f} |"
        )
        holed = image.copy()
        ImageDraw.Draw(holed).rectangle((HOLE[0], HOLE[1], HOLE[2] - 1, HOLE[3] - 1), "white")
        figures.setdefault("inpaint", (holed, classic or holed, native, own.image, image))

    print()
    print("| image | bicubic ×4 | mini superres ×4 | seconds |")
    print("| --- | --- | --- | --- |")
    for name in EXAMPLES:
        image = Image.open(ROOT / "examples" / name).convert("RGB")
        truth = image.resize((64, 64), Image.BICUBIC, reducing_gap=None)
        low = image.resize((16, 16), Image.BICUBIC, reducing_gap=None)
        bicubic = low.resize((64, 64), Image.BICUBIC)
        start = time.perf_counter()
        result = superres(backend, low, scale=4, seed=args.seed, disable_progress=True).image
        seconds = time.perf_counter() - start
        scores = {
            "bicubic": psnr(np.asarray(bicubic), np.asarray(truth)),
            "mini": psnr(np.asarray(result), np.asarray(truth)),
        }
        for key, value in scores.items():
            means.setdefault(f"superres_{key}", []).append(value)
        print(f"| {name} | {scores['bicubic']:.2f} dB | {scores['mini']:.2f} dB | {seconds:.1f} |")
        figures.setdefault("superres", (low, bicubic, result, truth))

    if not args.no_figures:
        labels = ["input", "Telea (OpenCV)", "mini, 64 px", "mini, 128 px", "original"]
        row(list(figures["inpaint"]), labels, 192).save(ROOT / "docs" / "first_use_inpaint.png")
        labels = ["input, 16 px", "bicubic x4", "mini superres x4", "original, 64 px"]
        row(list(figures["superres"]), labels, 192).save(ROOT / "docs" / "first_use_superres.png")
    print(" ".join(f"{key}={np.mean(values):.2f}" for key, values in means.items()))


if __name__ == "__main__":
    main()
