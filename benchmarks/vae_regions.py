"""Where a model's VAE loses detail: reconstruction PSNR of held-out composites over the object
and over the background, and per texture family (issue #24's "VAE ≥ 28 dB").

Each composite is encoded and its posterior mean decoded (as the training report does); the
squared errors are pooled over the pixels of a region (object: alpha > 0.5; background:
alpha < 0.01) before the PSNR, so a region's figure is its mean squared error in dB.

    python benchmarks/vae_regions.py --model mini --model PATH/TO/mini-gpu-wide --n 300
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import add_model_option, model_list, quiet_libraries  # noqa: E402
from _gpu_report import print_table  # noqa: E402

from layerdecomp.data.composites import make_composite  # noqa: E402
from layerdecomp.models import load_model  # noqa: E402
from layerdecomp.training.loops import to_model_range  # noqa: E402


def psnr(mse: float) -> float:
    return 10 * math.log10(255**2 / mse) if mse > 0 else math.inf


@torch.no_grad()
def regions(vae, n: int, size: int = 64, batch: int = 50) -> dict[str, float]:
    """PSNR (dB) of the whole images, the object, the background and each texture family, and
    the object's share of the squared error and of the pixels."""
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, float] = defaultdict(float)
    for start in range(0, n, batch):
        comps = [make_composite(i, "heldout", size) for i in range(start, min(start + batch, n))]
        x = torch.from_numpy(np.stack([c.image for c in comps])).permute(0, 3, 1, 2)
        z = vae.encode(to_model_range(x).to(vae.dtype)).latent_dist.mean
        recon = ((vae.decode(z).sample.float().clamp(-1, 1) + 1) * 127.5).round()
        err = ((recon - x.float()) ** 2).mean(1)  # (B, H, W), over the channels
        alpha = torch.from_numpy(np.stack([c.alpha for c in comps]))
        masks = {"whole": alpha >= 0, "object": alpha > 0.5, "background": alpha < 0.01}
        for name, where in masks.items():
            sums[name] += float(err[where].sum())
            counts[name] += float(where.sum())
        for c, e in zip(comps, err, strict=True):
            sums[c.texture] += float(e.sum())
            counts[c.texture] += e.numel()
    out = {name: psnr(sums[name] / counts[name]) for name in sums}
    out["object error share"] = sums["object"] / sums["whole"] if sums["whole"] else math.nan
    out["object pixel share"] = counts["object"] / counts["whole"]
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_option(parser, "mini, a model folder")
    parser.add_argument("--n", type=int, default=300, help="held-out composites")
    args = parser.parse_args(argv)
    quiet_libraries()
    results = {m: regions(load_model(m, device="cpu").vae, args.n) for m in model_list(args.model)}
    families = sorted({k for r in results.values() for k in r} - {
        "whole", "object", "background", "object error share", "object pixel share"})  # fmt: skip
    head = ["model", "whole dB", "object dB", "background dB", "object: error / pixels", *families]
    rows = [
        [Path(m).name, f"{r['whole']:.2f}", f"{r['object']:.2f}", f"{r['background']:.2f}",
         f"{r['object error share']:.2f} / {r['object pixel share']:.2f}",
         *(f"{r[f]:.2f}" for f in families)]
        for m, r in results.items()
    ]  # fmt: skip
    print(f"# {args.n} held-out composites, 64 px; PSNR of the pooled squared error per region")
    print_table(head, rows)


if __name__ == "__main__":
    main()
