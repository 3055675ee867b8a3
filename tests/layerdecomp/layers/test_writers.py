"""Decomposition outputs: PNG layers, the contact sheet, OpenRaster, atomic completion."""

import json
import xml.etree.ElementTree as ET
import zipfile

import numpy as np
import pytest
from PIL import Image

from layerdecomp.io import tensor_to_image
from layerdecomp.layers import OUTPUTS, is_complete, save_decomposition
from tests.layerdecomp.toy_backend import disk_image, toy_decompose


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    image, alpha = disk_image()
    layers = toy_decompose(image, iterations=3)
    pil = tensor_to_image(image)
    out = tmp_path_factory.mktemp("run") / "disk"
    save_decomposition(out, pil, layers, {"seed": 0})
    return out, pil, layers


def test_every_output_is_written_and_nothing_else(saved):
    out, _, _ = saved
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    assert is_complete(out)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging left
    assert json.loads((out / "run.json").read_text()) == {"seed": 0}


def test_pngs_recompose_the_input(saved):
    out, pil, layers = saved
    fg = np.asarray(Image.open(out / "foreground.png")).astype(float) / 255
    bg = np.asarray(Image.open(out / "background.png")).astype(float) / 255
    mask = np.asarray(Image.open(out / "mask.png")).astype(float) / 255
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
        assert [layer.get("name") for layer in layers] == ["foreground", "background", "mask"]
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
