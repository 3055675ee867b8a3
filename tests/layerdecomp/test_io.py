"""Image/mask loading and validation, tensor conversion, atomic output writing."""

from __future__ import annotations

import io
import json
import os

import pytest
import torch
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.io import (
    check_output_path,
    image_to_tensor,
    load_image,
    load_mask,
    mask_to_tensor,
    tensor_to_image,
    write_outputs,
)


def _gradient(size=(12, 8)) -> Image.Image:
    image = Image.new("RGB", size)
    image.putdata(
        [
            (x * 20 % 256, y * 30 % 256, (x + y) * 7 % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    return image


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I;16"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    source = _gradient().convert(mode if mode != "I;16" else "L")
    if mode == "I;16":
        source = Image.new("I;16", (12, 8), 65535)
    path = tmp_path / ("img.tif" if mode in ("CMYK", "I;16") else "img.png")
    source.save(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (12, 8)
    if mode == "I;16":
        assert image.getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_applied(tmp_path):
    image = _gradient((12, 8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes())
    assert load_image(path).size == (8, 12)


def test_bad_image_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="is a directory"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("hello, not an image")
    with pytest.raises(InputError, match="not an image file"):
        load_image(tmp_path / "notes.png")
    buffer = io.BytesIO()
    Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:2000])
    with pytest.raises(InputError, match="cut.png"):
        load_image(tmp_path / "cut.png")


def test_unreadable_image(tmp_path, monkeypatch):
    path = tmp_path / "secret.png"
    _gradient().save(path)

    def denied(*args, **kwargs):  # chmod 0 does not stop root, who runs CI
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Image, "open", denied)
    with pytest.raises(InputError, match="permission denied"):
        load_image(path)


def test_decompression_bomb_refused(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("L", (40, 40)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 px: over the limit, < 2×
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # over 2×: Pillow's own error
    with pytest.raises(InputError, match="decompression bomb"):
        load_image(path)


def test_mask_loading(tmp_path):
    mask = Image.new("RGB", (12, 8), (0, 0, 0))
    mask.paste((250, 250, 250), (2, 2, 6, 6))
    mask.paste((100, 100, 100), (8, 2, 10, 6))  # below half: keep
    mask.save(tmp_path / "mask.png")
    loaded = load_mask(tmp_path / "mask.png", (12, 8))
    fill = mask_to_tensor(loaded)
    assert fill.shape == (1, 1, 8, 12) and fill.sum() == 16
    with pytest.raises(InputError, match="does not match"):
        load_mask(tmp_path / "mask.png", (13, 8))
    Image.new("L", (12, 8), 0).save(tmp_path / "black.png")
    with pytest.raises(InputError, match="all black, nothing to fill"):
        load_mask(tmp_path / "black.png", (12, 8))


def test_tensor_round_trip_is_exact():
    image = _gradient()
    tensor = image_to_tensor(image)
    assert tensor.shape == (1, 3, 8, 12) and tensor.min() >= -1 and tensor.max() <= 1
    assert tensor_to_image(tensor).tobytes() == image.tobytes()
    assert tensor_to_image(torch.full((3, 2, 2), 5.0)).getpixel((0, 0)) == (255, 255, 255)


def test_check_output_path(tmp_path):
    assert check_output_path(tmp_path / "out.png") == tmp_path / "out.png"
    # a missing folder is made when the output is written; checking makes nothing
    assert check_output_path(tmp_path / "missing" / "out.png") == tmp_path / "missing" / "out.png"
    assert not (tmp_path / "missing").exists()
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_path(tmp_path / "file" / "out.png")
    with pytest.raises(InputError, match="is a directory"):
        check_output_path(tmp_path)
    with pytest.raises(InputError, match="unknown image extension"):
        check_output_path(tmp_path / "out.xyz")


def test_write_outputs_atomic(tmp_path, monkeypatch):
    json_path = write_outputs(_gradient(), tmp_path / "out.png", {"seed": 1})
    assert json.loads(json_path.read_text()) == {"seed": 1}
    assert Image.open(tmp_path / "out.png").size == (12, 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.png"]

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", fail)
    with pytest.raises(InputError, match="disk full"):
        write_outputs(_gradient(), tmp_path / "again.png", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json", "out.png"]
