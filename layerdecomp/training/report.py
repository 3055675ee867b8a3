"""Run reports: loss curves (Pillow), image grids (diffusers' ``make_image_grid``), model card."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from diffusers.utils import make_image_grid
from PIL import Image, ImageDraw

_COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if len(v) < 2 or window < 2:
        return v
    kernel = np.ones(min(window, len(v))) / min(window, len(v))
    return np.convolve(np.pad(v, (len(kernel) - 1, 0), mode="edge"), kernel, mode="valid")


def _xy(box: tuple, i: int, n: int, value: float) -> tuple[float, float]:
    x0, y0, x1, y1, lo, hi = box
    fy = (min(max(value, lo), hi) - lo) / (hi - lo)
    return x0 + i / max(n - 1, 1) * (x1 - x0), y1 - fy * (y1 - y0)


def plot_losses(
    curves: dict[str, Sequence[float]], path: str | Path, size: tuple[int, int] = (480, 300)
) -> None:
    """One panel per curve: raw loss (light) and a moving average (dark), log-scaled y.

    Args:
        curves: Name → loss per step.
        path: The PNG to write.
        size: Size of one panel in pixels.
    """
    w, h = size
    canvas = Image.new("RGB", (w * max(len(curves), 1), h), "white")
    draw = ImageDraw.Draw(canvas)
    for k, (name, values) in enumerate(curves.items()):
        x0, y0, x1, y1 = k * w + 56, 24, k * w + w - 12, h - 36
        draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
        draw.text((x0, 6), f"{name} loss ({len(values)} steps)", fill=(0, 0, 0))
        if not values:
            continue
        logs = np.log10(np.maximum(np.asarray(values, float), 1e-8))
        lo, hi = float(np.percentile(logs, 0.5)), float(np.percentile(logs, 99.5))
        hi = hi if hi > lo else lo + 1.0
        box, n = (x0, y0, x1, y1, lo, hi), len(values)
        colour = _COLOURS[k % len(_COLOURS)]
        light = tuple(int(c + 0.7 * (255 - c)) for c in colour)
        draw.line([_xy(box, i, n, v) for i, v in enumerate(logs)], fill=light, width=1)
        smooth = np.log10(np.maximum(_smooth(values, max(len(values) // 50, 1)), 1e-8))
        draw.line([_xy(box, i, n, v) for i, v in enumerate(smooth)], fill=colour, width=2)
        for frac in (0.0, 0.5, 1.0):
            value = lo + frac * (hi - lo)
            y = y1 - frac * (y1 - y0)
            draw.line((x0 - 4, y, x0, y), fill=(0, 0, 0))
            draw.text((k * w + 4, y - 6), f"{10**value:.3g}", fill=(0, 0, 0))
        for frac in (0.0, 0.5, 1.0):
            x = x0 + frac * (x1 - x0)
            draw.line((x, y1, x, y1 + 4), fill=(0, 0, 0))
            draw.text((x - 10, y1 + 8), str(round(frac * (len(values) - 1))), fill=(0, 0, 0))
    canvas.save(path)


def image_grid(
    images: Sequence[np.ndarray],
    columns: int,
    scale: int = 1,
    labels: Sequence[str] | None = None,
    label_height: int = 12,
) -> Image.Image:
    """Tile uint8 RGB images ``(H, W, 3)`` in rows of ``columns``, optionally one label per row.

    The tiling is diffusers' :func:`~diffusers.utils.make_image_grid`; a short last row is
    padded with white tiles, and labels go on white strips above their rows.

    Args:
        images: Equal-size images.
        columns: Images per row.
        scale: Nearest-neighbour upscaling factor (for viewing only).
        labels: A caption drawn above each row.
        label_height: Height of the label strip in pixels.

    Returns:
        The grid.
    """
    h, w = images[0].shape[:2]
    size = (w * scale, h * scale)
    tiles = [Image.fromarray(im).resize(size, Image.Resampling.NEAREST) for im in images]
    rows = math.ceil(len(tiles) / columns)
    tiles += [Image.new("RGB", size, "white")] * (rows * columns - len(tiles))
    grid = make_image_grid(tiles, rows=rows, cols=columns)
    if not labels:
        return grid
    band = size[1] + label_height
    labelled = Image.new("RGB", (grid.width, rows * band), "white")
    draw = ImageDraw.Draw(labelled)
    for r in range(rows):
        strip = grid.crop((0, r * size[1], grid.width, (r + 1) * size[1]))
        labelled.paste(strip, (0, r * band + label_height))
        if r < len(labels):
            draw.text((2, r * band), labels[r], fill=(0, 0, 0))
    return labelled


def write_model_card(path: str | Path, facts: dict) -> None:
    """Write ``MODEL_CARD.md`` from a dict of facts collected by the training run.

    Args:
        path: The file to write.
        facts: Keys used: ``config``, ``data``, ``params``, ``size_mb``, ``steps``, ``times``,
            ``hardware``, ``metrics``, ``command``.
    """
    f, c = facts, facts["config"]
    params = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in f["params"].items())
    times = ", ".join(f"{k} {v / 60:.1f} min" for k, v in f["times"].items())
    lines = [
        '# layerdecomp "mini": a miniature Stable-Diffusion-format text-to-image model',
        "",
        "Trained from scratch by `python -m layerdecomp.training` on synthetic composites, as the",
        "project's embedded default model. It is a toy: it knows colour emoji over procedural",
        f"textures at {c['data']['size']}x{c['data']['size']} pixels and nothing else.",
        "",
        "## Data",
        f"- {f['data']}",
        '- Captions: foreground only ("a cat face"), background only ("blue stripes") or both',
        f'  ("a cat face on blue stripes"), with weights {tuple(c["data"]["caption_weights"])};',
        f"  the empty caption with probability {c['data']['caption_dropout']} (for guidance).",
        "",
        "## Model",
        f"- AutoencoderKL: factor {f['factor']}, {c['vae']['latent_channels']} latent channels, "
        f"scaling factor {f['scaling_factor']:.4f}.",
        "- UNet2DConditionModel; CLIPTextModel trained jointly with the UNet; a word-level",
        "  CLIPTokenizer covering every caption word; DDIMScheduler with SD 1.x's scaled-linear",
        "  schedule (epsilon prediction).",
        f"- Parameters: {params}.",
        f"- Weights: fp16 safetensors, {f['size_mb']:.1f} MB in all.",
        "",
        "## Training",
        f"- Steps: VAE {f['steps']['vae']}, UNet + text encoder {f['steps']['unet']} (AdamW,",
        f"  warm-up + cosine decay, EMA decay {c['unet']['ema_decay']}).",
        f"- Time: {times}.",
        f"- Hardware: {f['hardware']}.",
        f"- Command: `{f['command']}`",
        "- Full config: `training_config.json`; losses: `losses.json`, `loss.png`.",
        "",
        "## Metrics",
        *(f"- {k}: {v}" for k, v in f["metrics"].items()),
        "",
        "## Files",
        f"- `samples.png`: DDIM {c['sample']['steps']} steps, guidance_scale "
        f"{c['sample']['guidance_scale']},",
        "  one row per prompt.",
        "- `reconstructions.png`: held-out composites (top) and their VAE reconstructions.",
        "",
        "## Use",
        "```python",
        "import torch",
        "from diffusers import StableDiffusionPipeline",
        "",
        "pipe = StableDiffusionPipeline.from_pretrained(PATH, dtype=torch.float32)",
        'image = pipe("a cat face on blue stripes", num_inference_steps=20, guidance_scale=5)',
        "```",
        "Load with an explicit float32 dtype on CPU (the files hold fp16 weights).",
    ]
    Path(path).write_text("\n".join(lines) + "\n")
