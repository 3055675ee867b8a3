"""``layerdecomp superres``, ``style``, ``run``, ``constraints`` end to end (tiny SD, tiny CLIP)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from layerdecomp.cli import main

from .constraints.tiny_clip import save_clip_folder

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "3", "-q"]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (5, 3), dtype=np.uint8), mode="L").save(
        tmp_path / "small.png"
    )
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "ref.png")
    return tmp_path


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    return save_clip_folder(tmp_path_factory.mktemp("clip") / "tiny-clip")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_no_outputs(folder):
    assert [p.name for p in folder.iterdir() if p.name.startswith(("out", ".out"))] == []


def test_help_lists_the_commands():
    result = run("--help")
    for command in ("superres", "style", "run", "constraints"):
        assert command in result.stdout
    assert "--scale" in run("superres", "--help").stdout
    assert "--clip" in run("style", "--help").stdout


def test_superres_end_to_end(files, sd1_folder):
    out = files / "out.png"
    result = run(
        "superres", files / "small.png", "--scale", "4", "-o", out, "--model", sd1_folder, *FAST
    )
    assert result.exit_code == 0, result.output
    written = Image.open(out)
    assert written.size == (12, 20) and written.mode == "RGB"
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "superres" and meta["image_mode"] == "L"
    assert meta["size"] == [3, 5] and meta["output_size"] == [12, 20]
    assert meta["work_size"] == [12, 20]  # 4× and a multiple of the tiny VAE's factor 2
    params = meta["parameters"]
    assert params["scale"] == 4 and params["method"] == "backprop" and params["iterations"] == 1
    assert params["lam"] == "constant" and params["lam_start"] == 0.1 and params["seed"] == 3
    assert meta["nfe"] == 2 * (1 + 2) and meta["backward"] == 0
    assert len(meta["residuals"]["per_iteration"]) == 2
    assert set(meta["timings"]) >= {"load", "sample", "total"} and "versions" in meta
    assert "recipe" not in meta


def test_superres_vae_newton_is_reproducible(files, sd1_folder):
    outputs = []
    for name in ("out_a.png", "out_b.png"):
        args = ["--method", "vae_newton", "--scale", "2", "--perturbation", "0.05"]
        result = run(
            "superres",
            files / "small.png",
            "-o",
            files / name,
            "--model",
            sd1_folder,
            *args,
            *FAST,
        )
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(files / name)))
    assert outputs[0].shape == (10, 6, 3) and (outputs[0] == outputs[1]).all()
    meta = json.loads((files / "out_a.json").read_text())
    assert meta["parameters"]["method"] == "vae_newton"
    assert meta["parameters"]["perturbation"] == 0.05


def test_style_end_to_end(files, sd1_folder, clip_folder):
    out = files / "out.png"
    result = run(
        "style",
        "--style",
        files / "ref.png",
        "--prompt",
        "a cat",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--clip",
        clip_folder,
        "--width",
        "12",
        *FAST,
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (12, 16)  # width given, height native (8 × factor 2)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "style" and meta["style_size"] == [40, 30]
    params = meta["parameters"]
    assert params["prompt"] == "a cat" and params["guidance"] == 2.0 and params["block"] == 2
    assert params["clip"] == str(clip_folder) and params["lam"] == "linear"
    assert meta["nfe"] == 2 * (1 + 2)


def test_style_without_clip_weights_offline_is_one_line(files, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run(
        "style",
        "--style",
        files / "ref.png",
        "--prompt",
        "x",
        "-o",
        files / "out.png",
        "--model",
        "unused",
    )
    assert_one_line_error(result, 2, "--clip 'openai'", "offline", "--clip PATH")
    assert_no_outputs(files)


def test_bad_inputs(files):
    base = ["-o", files / "out.png", "--model", "unused"]
    assert_one_line_error(run("superres", files / "missing.png", *base), 1, "no such file")
    (files / "text.png").write_text("not an image")
    assert_one_line_error(run("superres", files / "text.png", *base), 1, "not an image file")
    assert_one_line_error(run("superres", files / "small.png", "--scale", "3", *base), 2, "--scale")
    assert_one_line_error(
        run("superres", files / "small.png", "-o", files / "nowhere" / "out.png"),
        1,
        "does not exist",
    )
    assert_one_line_error(
        run("style", "--style", files / "missing.png", "--prompt", "x", *base),
        1,
        "style image",
        "no such file",
    )
    assert_one_line_error(run("style", "--style", files / "ref.png", *base), 2, "--prompt")
    assert_no_outputs(files)


def test_run_a_recipe_with_overrides(files, sd1_folder):
    out = files / "out.png"
    result = run(
        "run",
        "superres",
        f"image={files / 'small.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "scale=2",
        "steps=2",
        "iterations=1",
        "seed=3",
        "quiet=true",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (6, 10)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "superres" and meta["parameters"]["scale"] == 2
    assert meta["parameters"]["lam_start"] == 0.1  # from the recipe
    recipe = meta["recipe"]
    assert recipe["name"] == "superres" and recipe["task"] == "superres"
    assert recipe["values"]["scale"] == 2 and recipe["values"]["iterations"] == 1


def test_run_inpaint_recipe_records_the_recipe(files, sd1_folder):
    mask = Image.new("L", (3, 5), 0)
    mask.paste(255, (0, 0, 2, 3))
    mask.save(files / "mask.png")
    out = files / "out.png"
    result = run(
        "run",
        "inpaint",
        f"image={files / 'small.png'}",
        f"mask={files / 'mask.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "steps=2",
        "iterations=1",
        "seed=1",
        "quiet=1",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "inpaint" and meta["recipe"]["task"] == "inpaint"
    assert meta["parameters"]["iterations"] == 1


def test_run_a_constraint_by_name(files, sd1_folder):
    out = files / "out.png"
    result = run(
        "run",
        "downsample",
        f"image={files / 'ref.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "steps=2",
        "iterations=1",
        "seed=0",
        "quiet=true",
        "constraint.scale=2",
        "constraint.noise=0.05",
        "constraint.seed=1",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (40, 30)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "run" and meta["task"] == "downsample"
    assert meta["parameters"]["constraint_arguments"] == {"scale": 2, "noise": 0.05, "seed": 1}


def test_run_errors_are_one_line(files):
    assert_one_line_error(
        run("run", "superres", "foo=1"), 1, "recipe 'superres': unknown key 'foo' (known: "
    )
    assert_one_line_error(
        run("run", "superres", "steps=x"), 1, "key 'steps' expects an integer, got 'x'"
    )
    assert_one_line_error(run("run", "superres"), 1, "missing key 'image'")
    assert_one_line_error(run("run", "nope"), 1, "recipe 'nope'")
    assert_one_line_error(
        run("run", "decompose", "image=x.png", "output=o", "fg=a", "bg=b", "noise_level=1.5"),
        1,
        "noise_level",
    )
    result = run(
        "run",
        "mask",
        f"image={files / 'ref.png'}",
        f"output={files / 'out.png'}",
        "model=/nonexistent/model",
    )
    assert_one_line_error(result, 2, "/nonexistent/model")
    assert_no_outputs(files)


def test_run_dry_run_prints_the_resolved_parameters():
    result = run("run", "style", "--dry-run", "style=a.png", "prompt=p", "output=o.png")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["task"] == "style" and printed["parameters"]["guidance"] == 2.0
    assert printed["parameters"]["seed"] is None


def test_constraints_lists_the_builtins():
    result = run("constraints")
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert names == sorted(names) and {"blend", "clip_style", "downsample", "mask"} <= set(names)
    line = next(line for line in lines if line.startswith("downsample"))
    assert "Super-resolution" in line and line.endswith("[built-in]")
