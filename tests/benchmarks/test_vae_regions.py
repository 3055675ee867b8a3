"""vae_regions.py's PSNR per region against a direct computation, with a fake autoencoder whose
error is known: a perfect one scores inf everywhere, one that darkens the object alone leaves
the background perfect."""

import math
import runpy
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from layerdecomp.data.composites import make_composite

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "vae_regions.py"


class FakeVAE:
    """encode: the image itself; decode: the image, darkened by ``shift`` where ``alpha`` > 0.5
    (the alphas of the composites it will see, in order)."""

    dtype = torch.float32

    def __init__(self, shift: float, alphas: torch.Tensor | None = None):
        self.shift, self.alphas, self.seen = shift, alphas, 0

    def encode(self, x):
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=x))

    def decode(self, z):
        out = z.clone()
        if self.alphas is not None:
            mask = self.alphas[self.seen : self.seen + len(z)] > 0.5
            out -= self.shift * mask[:, None].float()
            self.seen += len(z)
        return SimpleNamespace(sample=out)


def test_a_perfect_vae_scores_inf_and_an_object_error_stays_in_the_object():
    regions = runpy.run_path(str(SCRIPT), run_name="vae_regions")["regions"]
    perfect = regions(FakeVAE(0.0), 6, batch=4)
    assert perfect["whole"] == perfect["object"] == perfect["background"] == math.inf
    comps = [make_composite(i, "heldout", 64) for i in range(6)]
    alphas = torch.from_numpy(np.stack([c.alpha for c in comps]))
    shift = 20 / 127.5  # 20 levels darker, clamped at 0
    got = regions(FakeVAE(shift, alphas), 6, batch=4)
    image = np.stack([c.image for c in comps]).astype(np.float64)  # (N, H, W, 3)
    obj = np.stack([c.alpha for c in comps]) > 0.5
    err = ((np.maximum(image - 20, 0) - image) ** 2).mean(-1)
    expected = 10 * np.log10(255**2 / err[obj].mean())
    assert abs(got["object"] - expected) < 1e-6 and got["background"] == math.inf
    assert abs(got["whole"] - 10 * np.log10(255**2 / (err * obj).mean())) < 1e-6
    assert abs(got["object error share"] - 1.0) < 1e-6  # float32 sums
    assert abs(got["object pixel share"] - obj.mean()) < 1e-12
