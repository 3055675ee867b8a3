"""Matting after the engine: a soft disk of one colour over a texture, known alpha, rough masks."""

import dataclasses

import kornia
import numpy as np
import pytest
import torch
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.layers import Layers, exact_layers, save_decomposition
from layerdecomp.layers.matting import DEFAULT_BAND, image_band, matte, trimap

SIDE = 48
ORANGE = torch.tensor([0.9, 0.5, -0.6], dtype=torch.float64).view(1, 3, 1, 1)
TEAL = torch.tensor([-0.7, 0.6, 0.5], dtype=torch.float64).view(1, 3, 1, 1)


def grid() -> tuple[torch.Tensor, torch.Tensor]:
    side = torch.arange(SIDE, dtype=torch.float64)
    return torch.meshgrid(side, side, indexing="ij")


def soft_disk(cy: float, cx: float, radius: float, sigma: float = 1.5) -> torch.Tensor:
    """A disk's alpha (1, 1, SIDE, SIDE) with edges blurred by a Gaussian of ``sigma`` pixels."""
    ys, xs = grid()
    disk = (((ys - cy) ** 2 + (xs - cx) ** 2) <= radius**2).double()[None, None]
    return kornia.filters.gaussian_blur2d(disk, (11, 11), (sigma, sigma), border_type="replicate")


def texture() -> torch.Tensor:
    ys, xs = grid()
    channels = [
        0.5 * torch.sin(xs / 2.3 + ys / 5),
        -0.3 + 0.4 * torch.cos(ys / 3.1),
        0.2 * torch.sin((xs + ys) / 4),
    ]
    return torch.stack(channels)[None]


def engine_like(image, shares, seed=0):
    """Layers as an engine might give them: binary shares (each pixel to its largest true share),
    the input as every layer's colour where the layer holds the pixel, noise elsewhere."""
    generator = torch.Generator().manual_seed(seed)
    rough = torch.nn.functional.one_hot(shares.argmax(0)[0], shares.shape[0])
    rough = rough.permute(2, 0, 1)[:, None].double()
    noise = 0.1 * torch.randn(shares.shape[0], 3, SIDE, SIDE, generator=generator).double()
    estimates = (image + noise).clamp(-1, 1)
    return Layers(exact_layers(image, rough, estimates), rough, prompts=["a"] * shares.shape[0])


@pytest.fixture(scope="module")
def disk():
    """A soft orange disk over a texture: image, true alpha, the engine-like layers, matted."""
    alpha = soft_disk(23.5, 21, 13)
    background = texture()
    image = alpha * ORANGE + (1 - alpha) * background
    rough = engine_like(image, torch.cat([alpha, 1 - alpha]))
    prompts = ["an orange disk", "a texture"]
    layers = Layers(rough.images, rough.masks, prompts=prompts, trace={"engine": True})
    return image, alpha, layers, matte(image, layers)


def test_matting_lowers_the_alpha_error(disk):
    image, alpha, layers, matted = disk
    before = (layers.mask - alpha).abs().sum()
    after = (matted.mask - alpha).abs().sum()
    assert after <= 0.5 * before, (float(before), float(after))
    assert matted.prompts == layers.prompts and matted.trace["engine"] is True
    assert matted.trace["matting"]["band"] == DEFAULT_BAND


def test_soft_edges_carry_the_foreground_colour(disk):
    image, alpha, _, matted = disk
    band = ((alpha > 0.05) & (alpha < 0.95)).expand(-1, 3, -1, -1)
    raw = (image - ORANGE).abs()[band].mean()
    ours = (matted.foreground.double() - ORANGE).abs()[band].mean()
    assert ours <= 0.5 * raw, (float(raw), float(ours))


def test_recomposition_is_exact_and_the_background_stays_where_it_was_hidden(disk, tmp_path):
    image, alpha, layers, matted = disk
    assert torch.allclose(matted.masks.sum(0), torch.ones(1, SIDE, SIDE, dtype=matted.masks.dtype))
    assert matted.masks.min() >= 0 and matted.masks.max() <= 1
    assert (matted.recomposition.double() - image).abs().max() <= 1e-5
    opaque = matted.mask[0, 0] >= 1 - 1e-9
    assert opaque.sum() > 100
    kept = (matted.background - layers.background).abs()[0][:, opaque]
    assert kept.max() <= 1e-6
    # and in 8 bits: the written PNGs recompose the written input within 1/255
    u8 = lambda t: ((t[0].permute(1, 2, 0).double() + 1) * 127.5).round().clamp(0, 255)  # noqa: E731
    pil = Image.fromarray(u8(image).numpy().astype(np.uint8))
    save_decomposition(tmp_path / "out", pil, matted, {}, formats=["png"])
    read = lambda n: np.asarray(Image.open(tmp_path / "out" / n)).astype(np.float64) / 255  # noqa: E731
    fg, bg = read("foreground.png"), read("background.png")
    a = fg[..., 3:]
    recomposed = a * fg[..., :3] + (1 - a) * bg
    truth = ((image[0].permute(1, 2, 0).double() + 1) / 2).numpy()  # the float input
    assert np.abs(recomposed - truth).max() <= 1 / 255


def test_three_layers_matte_each_front_layer():
    front = soft_disk(18, 18, 10)
    back = soft_disk(28, 30, 12)
    shares = torch.cat([front, back * (1 - front), (1 - back) * (1 - front)])
    under = back * TEAL + (1 - back) * texture()
    image = front * ORANGE + (1 - front) * under
    layers = engine_like(image, shares, seed=1)
    matted = matte(image, layers, band=2)
    assert matted.count == 3
    assert torch.allclose(matted.masks.sum(0), torch.ones(1, SIDE, SIDE, dtype=matted.masks.dtype))
    assert matted.masks.min() >= 0
    assert (matted.recomposition.double() - image).abs().max() <= 1e-5
    before = (layers.masks - shares).abs().sum((1, 2, 3))
    after = (matted.masks.double() - shares).abs().sum((1, 2, 3))
    assert (after[:2] <= 0.6 * before[:2]).all(), (before, after)
    assert after.sum() <= 0.6 * before.sum()


def test_trimap_bands_and_layers_without_an_edge():
    share = torch.zeros(20, 20, dtype=torch.float64)
    share[5:15, 5:15] = 1
    tri = trimap(share, 2)
    assert tri[10, 10] == 1 and tri[0, 0] == 0
    assert (tri == 0.5).sum() == 14 * 14 - 6 * 6  # 2 px each side of the edge
    # a front layer with no sure foreground keeps the engine's share and colours
    image = texture()
    empty = torch.cat([torch.zeros(1, 1, SIDE, SIDE), torch.ones(1, 1, SIDE, SIDE)]).double()
    layers = Layers(torch.cat([image, image]), empty)
    matted = matte(image, layers)
    assert torch.equal(matted.masks, layers.masks) and torch.allclose(matted.images, layers.images)


def test_the_band_is_in_the_engines_working_pixels(disk):
    image, alpha, layers, _ = disk
    worked = dataclasses.replace(layers, trace={"work_size": [16, 12]})
    assert image_band(worked, 2) == 6 and image_band(layers, 2) == 2
    wide = matte(image, worked, band=1)
    assert wide.trace["matting"] == {**wide.trace["matting"], "band": 1, "band_pixels": 3}
    assert torch.equal(wide.masks, matte(image, layers, band=3).masks)


@pytest.mark.parametrize("band", [0, -1, 2.5, True])
def test_bad_band_sure_or_image(disk, band):
    image, _, layers, _ = disk
    with pytest.raises(InputError, match="band"):
        matte(image, layers, band=band)
    with pytest.raises(InputError, match="sure"):
        matte(image, layers, sure=0.4)
    with pytest.raises(InputError, match="image"):
        matte(image[..., :-1], layers)


def test_importing_pymatting_keeps_torchs_thread_count():
    """numba's import resets OpenMP's threads (seen with OMP_NUM_THREADS=1 on 2 cores: torch went
    from 1 to 2 threads and later images of a run came out in another summation order)."""
    import os
    import subprocess
    import sys

    code = (
        "import torch\n"
        "before = torch.get_num_threads()\n"
        "from layerdecomp.layers.matting import _import_pymatting\n"
        "_import_pymatting()\n"
        "print(before, torch.get_num_threads())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
