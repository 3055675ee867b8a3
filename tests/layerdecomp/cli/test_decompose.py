"""``layerdecomp decompose`` end to end: outputs, folders/globs with resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import layerdecomp.models as models
from layerdecomp.layers import OUTPUTS
from tests.layerdecomp.toy_backend import ToyBackend, disk_image, three_layer_image

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--updates", "2", "--samples", "2", "--iters", "1", "--runs", "2"]
FAST += ["--seed", "3", "-q"]


def save_disk(path, **kwargs):
    image, _ = disk_image(**kwargs)
    data = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    Image.fromarray(data).save(path)


@pytest.fixture
def toy(monkeypatch):
    backend = ToyBackend()
    calls = []

    def load_model(spec, **kwargs):
        calls.append(spec)
        return backend

    monkeypatch.setattr(models, "load_model", load_model)
    return calls


def test_single_image_writes_every_output(tmp_path, toy, cli):
    save_disk(tmp_path / "disk.png")
    result = cli(
        "decompose",
        tmp_path / "disk.png",
        "--fg",
        "red",
        "--bg",
        "blue",
        "-o",
        tmp_path / "out",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(OUTPUTS)
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == 3 and meta["fg_prompt"] == "red" and meta["bg_prompt"] == "blue"
    assert meta["parameters"]["samples"] == 2 and meta["nfe"] > 0
    assert len(meta["mask_change"]) == meta["updates_run"] <= 2
    assert meta["parameters"]["runs"] == 2 and meta["run"] in (0, 1)
    assert meta["matting"]["band"] == 2 and meta["fingerprint"]["matting"]
    mask = np.asarray(Image.open(out / "mask.png"))
    assert mask.shape == (16, 16)
    raw = tmp_path / "raw"
    prompts = ["--fg", "red", "--bg", "blue", "--no-matting"]
    result = cli("decompose", tmp_path / "disk.png", *prompts, "-o", raw, *FAST)
    assert result.exit_code == 0, result.output
    assert json.loads((raw / "run.json").read_text())["parameters"]["matting"] is False


def test_three_layers_from_repeated_fg(tmp_path, toy, cli):
    image, _ = three_layer_image()
    data = ((image[0].permute(1, 2, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    Image.fromarray(data).save(tmp_path / "three.png")
    prompts = ["--fg", "red", "--fg", "green", "--bg", "blue"]
    result = cli("decompose", tmp_path / "three.png", *prompts, "-o", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    meta = json.loads((out / "run.json").read_text())
    assert meta["prompts"] == ["red", "green", "blue"] and meta["fg_prompt"] == "red"
    assert meta["fingerprint"]["fg"] == ["red", "green"]
    for name in ("layer1.png", "layer2.png", "background.png", "layers.psd", "sheet.png"):
        assert (out / name).is_file(), name
    # the RGBA layers stacked over the background give the input back
    stack = Image.open(out / "background.png").convert("RGBA")
    for name in ("layer2.png", "layer1.png"):
        stack.alpha_composite(Image.open(out / name))
    error = np.abs(np.asarray(stack.convert("RGB"), int) - data.astype(int)).max()
    assert error <= 2


def test_too_many_layers_are_refused(tmp_path, toy, cli, one_line_error):
    save_disk(tmp_path / "disk.png")
    many = [arg for i in range(8) for arg in ("--fg", f"p{i}")]
    result = cli("decompose", tmp_path / "disk.png", *many, "--bg", "b", "-o", tmp_path / "o")
    one_line_error(result, 1, "fg: 8 foreground layers given; at most 7")
    assert not (tmp_path / "o").exists() and toy == []


def test_other_sizes_come_back_at_their_size(tmp_path, monkeypatch, cli):
    backend = ToyBackend()
    backend.size_multiple = 8  # forces a resize of the 13×13 input to 16×16 and back
    monkeypatch.setattr(models, "load_model", lambda spec, **kw: backend)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (13, 13, 3), np.uint8))
    image.save(tmp_path / "odd.png")
    result = cli(
        "decompose",
        tmp_path / "odd.png",
        "--fg",
        "red",
        "--bg",
        "blue",
        "-o",
        tmp_path / "out",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    fg = np.asarray(Image.open(tmp_path / "out" / "foreground.png")).astype(float) / 255
    bg = np.asarray(Image.open(tmp_path / "out" / "background.png")).astype(float) / 255
    m = fg[..., 3:]
    assert fg.shape == (13, 13, 4)
    recomposed = m * fg[..., :3] + (1 - m) * bg
    assert np.abs(recomposed - np.asarray(image) / 255).max() <= 2 / 255


def test_folder_and_glob_resume_without_redoing(tmp_path, toy, cli):
    images = tmp_path / "images"
    images.mkdir()
    for name in ("a", "b", "c"):
        save_disk(images / f"{name}.png")
    (images / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    result = cli("decompose", images, "--fg", "red", "--bg", "blue", "-o", out, *FAST)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a", "b", "c", "manifest.jsonl"]
    # a killed run: b lost its run.json; only b is redone
    (out / "b" / "run.json").unlink()
    stamp = (out / "a" / "run.json").stat().st_mtime_ns
    result = cli(
        "decompose", str(images / "*.png"), "--fg", "red", "--bg", "blue", "-o", out, *FAST
    )
    assert result.exit_code == 0, result.output
    assert (out / "b" / "run.json").exists()
    assert (out / "a" / "run.json").stat().st_mtime_ns == stamp
    result = cli("decompose", images, "--fg", "red", "--bg", "blue", "-o", out, *FAST)
    assert result.exit_code == 0 and "already decomposed" in result.stderr
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(line["output"][-1], line["status"]) for line in lines] == [
        *[(n, "done") for n in "abc"],
        ("a", "skipped"),
        ("c", "skipped"),
        ("b", "done"),
        *[(n, "skipped") for n in "abc"],
    ]


def test_the_real_loader_runs_a_tiny_stable_diffusion(tmp_path, sd1_folder, cli):
    save_disk(tmp_path / "disk.png")
    result = cli(
        "decompose",
        tmp_path / "disk.png",
        "--fg",
        "a cat",
        "--bg",
        "stripes",
        "--model",
        sd1_folder,
        "-o",
        tmp_path / "out",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    meta = json.loads((tmp_path / "out" / "run.json").read_text())
    assert meta["model"]["kind"] == "sd" and meta["work_size"] == [16, 16]


def test_bad_input(tmp_path, toy, cli, one_line_error):
    save_disk(tmp_path / "disk.png")
    (tmp_path / "broken.png").write_text("not an image")
    (tmp_path / "file").write_text("")
    base = ["--fg", "red", "--bg", "blue", *FAST]
    one_line_error(
        cli("decompose", tmp_path / "broken.png", *base, "-o", tmp_path / "o1"),
        1,
        "not an image file",
    )
    one_line_error(
        cli(
            "decompose",
            tmp_path / "disk.png",
            "--fg",
            " ",
            "--bg",
            "blue",
            "-o",
            tmp_path / "o2",
            *FAST,
        ),
        1,
        "fg: the prompt is empty",
    )
    one_line_error(
        cli("decompose", tmp_path / "disk.png", *base, "-o", tmp_path / "file"), 1, "is a file"
    )
    one_line_error(
        cli("decompose", tmp_path / "nothing*.png", *base, "-o", tmp_path / "o3"),
        1,
        "no image files",
    )
    assert not any(p.name.startswith(("o1", "o2", "o3", ".o")) for p in tmp_path.iterdir())
    assert toy == []  # nothing was loaded for bad input


def test_unknown_model_exits_2(tmp_path, cli, one_line_error):
    save_disk(tmp_path / "disk.png")
    result = cli(
        "decompose",
        tmp_path / "disk.png",
        "--fg",
        "red",
        "--bg",
        "blue",
        "--model",
        tmp_path / "no-such-model",
        "-o",
        tmp_path / "out",
        *FAST,
    )
    one_line_error(result, 2, "no-such-model")
    assert not (tmp_path / "out").exists()
