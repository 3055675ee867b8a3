"""IMAGE as a file, folder or glob; outputs by stem; masks for a folder of images."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.runs import image_files, masks_for, outputs_by_stem


@pytest.fixture
def folder(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("b.png", "a.jpg", "c.PNG"):
        Image.new("RGB", (4, 4)).save(images / name, format="PNG")
    (images / "notes.txt").write_text("not an image")
    (images / "sub.png").mkdir()
    return images


def test_a_file_a_folder_and_a_glob(folder):
    assert image_files(str(folder / "b.png")) == ([folder / "b.png"], False)
    names = ["a.jpg", "b.png", "c.PNG"]
    assert image_files(str(folder)) == ([folder / n for n in names], True)
    assert image_files(str(folder / "*.png")) == ([folder / "b.png"], True)
    with pytest.raises(InputError, match="no such file, folder or pattern"):
        image_files(str(folder / "missing.png"))
    with pytest.raises(InputError, match="no image files"):
        image_files(str(folder / "*.gif"))
    (folder.parent / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        image_files(str(folder.parent / "empty"))


def test_outputs_by_stem(folder, tmp_path):
    files, _ = image_files(str(folder))
    pairs = outputs_by_stem("images", files, lambda f: tmp_path / "out" / f"{f.stem}.png")
    assert [(src.name, out.name) for src, out in pairs] == [
        ("a.jpg", "a.png"),
        ("b.png", "b.png"),
        ("c.PNG", "c.png"),
    ]
    twins = [Path("x/a.png"), Path("x/a.jpg")]
    with pytest.raises(InputError, match="would both write to"):
        outputs_by_stem("x", twins, lambda f: tmp_path / f.stem)
    with pytest.raises(InputError, match="manifest"):
        outputs_by_stem("x", [Path("manifest.jsonl.png")], lambda f: tmp_path / f.stem)


def test_masks_one_for_all_or_one_each(folder, tmp_path):
    files, _ = image_files(str(folder))
    one = tmp_path / "mask.png"
    assert masks_for(files, one) == {f: one for f in files}
    masks = tmp_path / "masks"
    masks.mkdir()
    for name in ("a.png", "b.png", "c.webp", "zzz.png"):
        Image.new("L", (4, 4)).save(masks / name, format="PNG")
    found = masks_for(files, masks)
    assert {f.name: m.name for f, m in found.items()} == {
        "a.jpg": "a.png",
        "b.png": "b.png",
        "c.PNG": "c.webp",
    }
    (masks / "c.webp").unlink()
    with pytest.raises(InputError, match="no mask of that name for image"):
        masks_for(files, masks)
    Image.new("L", (4, 4)).save(masks / "c.png")
    Image.new("L", (4, 4)).save(masks / "c.jpg")
    with pytest.raises(InputError, match="two masks of that name"):
        masks_for(files, masks)
