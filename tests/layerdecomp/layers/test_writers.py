"""Decomposition outputs: PNG layers, the contact sheet, OpenRaster, Photoshop, atomic completion,
for two layers (the engine's toy run) and for three (ground truth of a two-object composite)."""

import json
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from psd_tools import PSDImage
from psd_tools.composite import composite

from layerdecomp.data.composites import make_composite
from layerdecomp.data.pairs import make_pair
from layerdecomp.errors import InputError
from layerdecomp.io import tensor_to_image
from layerdecomp.layers import OUTPUTS, Layers, exact_layers, is_complete, save_decomposition
from layerdecomp.layers.result import composite_over
from layerdecomp.layers.writers import output_files, png_stems, stack_pixels
from tests.layerdecomp.toy_backend import disk_image, toy_decompose


def _tensor(array: np.ndarray) -> torch.Tensor:
    """uint8 (…, H, W, C) → float (…, C, H, W) in [−1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).movedim(-1, -3).float() / 127.5 - 1


def pair_layers(size: int = 48) -> tuple[Image.Image, Layers]:
    """Three true layers of a held-out two-object composite (soft emoji edges, known colours)."""
    pair = make_pair(0, "heldout", size=size)
    image = _tensor(pair.image)[None]
    estimates = torch.cat([_tensor(pair.fgs[..., :3]), _tensor(pair.bg)[None]])
    shares = torch.from_numpy(pair.visible)[:, None]
    prompts = [*pair.captions_fg, pair.caption_bg]
    layers = Layers(exact_layers(image, shares, estimates), shares, prompts=prompts)
    return Image.fromarray(pair.image), layers


def composite_layers(size: int = 48) -> tuple[Image.Image, Layers]:
    """Two true layers of a held-out composite (an emoji with its soft alpha over a texture)."""
    sample = make_composite(0, "heldout", size=size)
    image = _tensor(sample.image)[None]
    estimates = torch.cat([_tensor(sample.fg[..., :3])[None], _tensor(sample.bg)[None]])
    alpha = torch.from_numpy(sample.alpha)[None, None]
    shares = torch.cat([alpha, 1 - alpha])
    prompts = [sample.caption_fg, sample.caption_bg]
    layers = Layers(exact_layers(image, shares, estimates), shares, prompts=prompts)
    return Image.fromarray(sample.image), layers


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.float64) / 255


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    image, alpha = disk_image()
    layers = toy_decompose(image, updates=3)
    pil = tensor_to_image(image)
    out = tmp_path_factory.mktemp("run") / "disk"
    save_decomposition(out, pil, layers, {"seed": 0})
    return out, pil, layers


@pytest.fixture(scope="module")
def saved2(tmp_path_factory):
    pil, layers = composite_layers()
    out = tmp_path_factory.mktemp("run") / "composite"
    save_decomposition(out, pil, layers, {"seed": 0})
    return out, pil, layers


@pytest.fixture(scope="module")
def saved3(tmp_path_factory):
    pil, layers = pair_layers()
    out = tmp_path_factory.mktemp("run") / "pair"
    save_decomposition(out, pil, layers, {"seed": 0})
    return out, pil, layers


def test_every_output_is_written_and_nothing_else(saved):
    out, _, _ = saved
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert is_complete(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    record = json.loads((out / "run.json").read_text())
    assert record == {"seed": 0, "files": output_files(2)}
    assert [f for files in record["files"].values() for f in files] == list(OUTPUTS[:-1])


def test_pngs_recompose_the_input(saved):
    out, pil, layers = saved
    fg, bg, mask = (pixels(out / f"{n}.png") for n in ("foreground", "background", "mask"))
    assert Image.open(out / "foreground.png").mode == "RGBA"
    assert np.array_equal(fg[..., 3], mask)
    recomposed = mask[..., None] * fg[..., :3] + (1 - mask[..., None]) * bg
    assert np.abs(recomposed - np.asarray(pil) / 255).max() <= 2 / 255
    assert Image.open(out / "sheet.png").size[0] > 5 * pil.size[0]


def test_openraster_structure(saved):
    out, pil, _ = saved
    with zipfile.ZipFile(out / "layers.ora") as archive:
        first = archive.infolist()[0]
        assert first.filename == "mimetype" and first.compress_type == zipfile.ZIP_STORED
        assert archive.read("mimetype") == b"image/openraster"
        root = ET.fromstring(archive.read("stack.xml"))
        assert (root.get("w"), root.get("h")) == tuple(str(s) for s in pil.size)
        layers = root.find("stack").findall("layer")
        assert [layer.get("name") for layer in layers] == ["red", "blue", "mask"]  # the prompts
        assert [layer.get("src") for layer in layers] == [
            "data/foreground.png",
            "data/background.png",
            "data/mask.png",
        ]
        assert [layer.get("visibility") for layer in layers] == ["visible", "visible", "hidden"]
        for layer in layers:
            with archive.open(layer.get("src")) as f:
                assert Image.open(f).size == pil.size
        names = set(archive.namelist())
        assert {"mergedimage.png", "Thumbnails/thumbnail.png"} <= names


def test_saving_over_an_existing_folder_replaces_it(saved, tmp_path):
    out, pil, layers = saved
    target = tmp_path / "again"
    target.mkdir()
    (target / "foreground.png").write_bytes(b"stale")
    assert not is_complete(target)
    save_decomposition(target, pil, layers, {"seed": 1})
    assert is_complete(target)
    assert Image.open(target / "foreground.png").mode == "RGBA"


def test_three_layers_write_every_layer_and_its_share(saved3):
    out, pil, layers = saved3
    pngs = [f"{stem}.png" for stem in png_stems(3)]
    assert pngs == [
        *("layer1.png", "layer2.png", "background.png"),
        *("mask1.png", "mask2.png", "recomposed.png"),
    ]
    expected = [*pngs, "sheet.png", "layers.ora", "layers.psd", "run.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(expected)
    assert json.loads((out / "run.json").read_text())["files"]["png"] == pngs
    assert is_complete(out)
    for i in (1, 2):
        assert Image.open(out / f"layer{i}.png").mode == "RGBA"
        share = layers.masks[i - 1, 0].numpy()
        assert np.abs(pixels(out / f"mask{i}.png") - share).max() <= 0.5 / 255 + 1e-6
    assert Image.open(out / "background.png").mode == "RGB"
    # stacked "over" each other from the background up, the PNGs give the input
    stack = [pixels(out / f"layer{i}.png") for i in (1, 2)]
    result = pixels(out / "background.png")
    for layer in reversed(stack):
        result = layer[..., 3:] * layer[..., :3] + (1 - layer[..., 3:]) * result
    assert np.abs(result - np.asarray(pil) / 255).max() <= 1 / 255
    # the front layer's alpha is its share; the second's is its share of what the first leaves
    alpha2 = stack[1][..., 3]
    leave = 1 - layers.masks[0, 0].numpy()
    seen = leave > 0.5
    assert np.abs(alpha2 * leave - layers.masks[1, 0].numpy())[seen].max() <= 1 / 255


def test_three_layer_openraster_and_sheet(saved3):
    out, pil, layers = saved3
    with zipfile.ZipFile(out / "layers.ora") as archive:
        stack = ET.fromstring(archive.read("stack.xml")).find("stack").findall("layer")
        names = [layer.get("name") for layer in stack]
        assert names == [*layers.prompts, "mask1", "mask2"]
        srcs = [layer.get("src") for layer in stack]
        assert srcs == [
            f"data/{s}.png" for s in ("layer1", "layer2", "background", "mask1", "mask2")
        ]
        with archive.open("mergedimage.png") as f:
            flat = np.asarray(Image.open(f)).astype(int)
    assert np.abs(flat - np.asarray(pil).astype(int)).max() <= 1
    # input | mask 1 | layer 1 | mask 2 | layer 2 | background | recomposition
    panel = max(pil.size) * -(-128 // max(pil.size))
    assert Image.open(out / "sheet.png").size[0] == 7 * (panel + 4) + 4


@pytest.mark.parametrize("which", ["saved2", "saved3"])
def test_photoshop_file_reads_back_and_recomposes_the_input(which, request):
    """Within 1/255 of the (8-bit) input, whichever way the layers are composited (float32
    rounding aside)."""
    out, pil, layers = request.getfixturevalue(which)
    truth = np.asarray(pil).astype(np.float64)
    psd = PSDImage.open(out / "layers.psd")
    assert psd.size == pil.size and psd.depth == 8 and psd.channels == 3
    assert len(psd) == layers.count
    assert [layer.name for layer in psd] == list(reversed(layers.prompts))  # bottom first
    assert all(layer.kind == "pixel" and layer.size == pil.size for layer in psd)
    assert all(layer.offset == (0, 0) and layer.visible for layer in psd)
    background = psd[0].numpy()
    assert background.shape[-1] == 4 and background[..., 3].min() == 1.0  # opaque at the bottom
    # psd-tools' own compositing, the stored merged image, and "over" of the read-back pixels
    color, _, alpha = composite(psd, force=True)
    assert alpha.min() >= 1 - 1e-6
    assert np.abs(color * 255 - truth).max() <= 1 + 1e-4
    assert np.abs(np.asarray(psd.topil()).astype(np.float64) - truth).max() <= 1
    read = torch.from_numpy(np.stack([layer.numpy() for layer in reversed(list(psd))]))
    read = read.double().permute(0, 3, 1, 2)
    over = composite_over(read[:, :3], read[:, 3:])[0].permute(1, 2, 0).numpy()
    assert np.abs(over * 255 - truth).max() <= 1


def test_layer_names_keep_unicode_and_fall_back_to_roles(saved3, tmp_path):
    out, pil, layers = saved3
    long = "a very long prompt " * 20
    named = Layers(layers.images, layers.masks, prompts=["🐱 a cat\nface", long, ""])
    save_decomposition(tmp_path / "named", pil, named, {}, formats=["psd"])
    psd = PSDImage.open(tmp_path / "named" / "layers.psd")
    assert [layer.name for layer in psd] == [
        "background",
        " ".join(long.split())[:255],
        "🐱 a cat face",
    ]
    save_decomposition(tmp_path / "plain", pil, Layers(layers.images, layers.masks), {}, ["ora"])
    with zipfile.ZipFile(tmp_path / "plain" / "layers.ora") as archive:
        stack = ET.fromstring(archive.read("stack.xml")).find("stack").findall("layer")
        assert [layer.get("name") for layer in stack][:3] == ["layer1", "layer2", "background"]


def test_rounding_is_compensated_across_many_layers():
    """Four random layers: the 8-bit stack composites to the exact recomposition within 1/255,
    where rounding each layer alone does not."""
    generator = torch.Generator().manual_seed(0)
    shares = torch.softmax(torch.randn(4, 1, 32, 32, generator=generator) * 2, 0)
    layers = Layers(torch.rand(4, 3, 32, 32, generator=generator) * 2 - 1, shares)
    rgba, masks = stack_pixels(layers)
    stack = torch.from_numpy(rgba).double().permute(0, 3, 1, 2) / 255
    exact = (layers.recomposition.double() + 1) / 2
    assert (composite_over(stack[:, :3], stack[:, 3:]) - exact).abs().max() <= 1 / 255
    rounded = torch.round((layers.images.double() + 1) / 2 * 255) / 255
    assert (composite_over(rounded, stack[:, 3:]) - exact).abs().max() > 1 / 255
    assert np.abs(masks / 255 - shares[:, 0].numpy()).max() <= 0.5 / 255 + 1e-6


def test_completion_follows_the_files_run_json_lists(saved, saved3, tmp_path):
    out, pil, layers = saved3
    target = tmp_path / "run"
    save_decomposition(target, pil, layers, {"seed": 2}, formats=["png", "sheet"])
    assert is_complete(target, ["png"]) and is_complete(target, ["png", "sheet"])
    assert not is_complete(target)  # ora and psd were not written
    (target / "mask2.png").unlink()
    assert not is_complete(target, ["png"])
    record = json.loads((target / "run.json").read_text())
    record["files"]["png"] = ["../run.json"]
    (target / "run.json").write_text(json.dumps(record))
    assert not is_complete(target, ["png"])
    (target / "run.json").write_text("{not json")
    assert not is_complete(target, ["sheet"])
    # a folder from before run.json listed its files: the two-layer names
    _, pil2, layers2 = saved
    legacy = tmp_path / "legacy"
    save_decomposition(legacy, pil2, layers2, {})
    (legacy / "run.json").write_text(json.dumps({"seed": 0}))
    assert is_complete(legacy)
    (legacy / "layers.psd").unlink()
    assert not is_complete(legacy) and is_complete(legacy, ["png", "ora"])


def test_nan_in_a_three_layer_run_writes_nothing(saved3, tmp_path):
    out, pil, layers = saved3
    images = layers.images.clone()
    images[1, 0, 3, 3] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        save_decomposition(tmp_path / "bad", pil, Layers(images, layers.masks), {})
    assert not (tmp_path / "bad").exists()


def test_layers_save_writes_what_the_command_line_writes(saved, saved3, tmp_path):
    """``Layers.save(folder)`` and ``to_pil()``: the Python API's way to the CLI's files."""
    for (out, pil, layers), name in ((saved, "two"), (saved3, "three")):
        folder = layers.save(tmp_path / name, pil, metadata={"seed": 0})
        assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in out.iterdir())
        for file in folder.iterdir():
            if file.suffix == ".png":
                assert np.array_equal(pixels(file), pixels(out / file.name)), file.name
        record = json.loads((folder / "run.json").read_text())
        assert record["prompts"] == layers.prompts and record["seed"] == 0
        images = layers.to_pil()
        assert sorted(images) == sorted(png_stems(layers.count))
        for stem, image in images.items():
            assert np.array_equal(np.asarray(image) / 255, pixels(out / f"{stem}.png")), stem
    _, _, layers = saved
    only = layers.save(tmp_path / "png", formats=["png"])  # the input: its recomposition
    expected = [f"{stem}.png" for stem in png_stems(2)] + ["run.json"]
    assert sorted(p.name for p in only.iterdir()) == sorted(expected)
