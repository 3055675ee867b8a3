"""``layerdecomp run``: recipes and constraints by name, overrides, one-line errors."""

from __future__ import annotations

import json

import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "3", "-q"]


def test_run_a_recipe_with_overrides(small_images, sd1_folder, cli):
    out = small_images / "out.png"
    result = cli(
        "run",
        "superres",
        f"image={small_images / 'small.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "scale=2",
        "steps=2",
        "iters=1",
        "seed=3",
        "quiet=true",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (6, 10)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "superres" and meta["parameters"]["scale"] == 2
    assert meta["parameters"]["lam"] == "constant:0.1"  # from the recipe
    assert meta["parameters"]["iters"] == 1
    recipe = meta["recipe"]
    assert recipe["name"] == "superres" and recipe["task"] == "superres"
    assert recipe["values"]["scale"] == 2 and recipe["values"]["iters"] == 1


def test_run_inpaint_recipe_records_the_recipe(small_images, sd1_folder, cli):
    mask = Image.new("L", (40, 30), 0)  # ref.png's size: 3x5 is below inpaint's smallest
    mask.paste(255, (0, 0, 20, 15))
    mask.save(small_images / "mask.png")
    out = small_images / "out.png"
    result = cli(
        "run",
        "inpaint",
        f"image={small_images / 'ref.png'}",
        f"mask={small_images / 'mask.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "steps=2",
        "iters=1",
        "seed=1",
        "quiet=1",
    )
    assert result.exit_code == 0, result.output
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "inpaint" and meta["recipe"]["task"] == "inpaint"
    assert meta["parameters"]["iters"] == 1


def test_run_a_constraint_by_name(small_images, sd1_folder, cli):
    out = small_images / "out.png"
    result = cli(
        "run",
        "downsample",
        f"image={small_images / 'ref.png'}",
        f"output={out}",
        f"model={sd1_folder}",
        "steps=2",
        "iters=1",
        "seed=0",
        "quiet=true",
        "constraint.scale=2",
        "constraint.noise=0.05",
        "constraint.seed=1",
    )
    assert result.exit_code == 0, result.output
    assert Image.open(out).size == (40, 30)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["command"] == "constrain" and meta["task"] == "downsample"
    assert meta["parameters"]["constraint_arguments"] == {"scale": 2, "noise": 0.05, "seed": 1}


def test_run_errors_are_one_line(small_images, cli, one_line_error, no_outputs):
    given = ["image=a.png", "output=o.png"]
    one_line_error(
        cli("run", "superres", *given, "foo=1"), 1, "recipe 'superres': foo: not an option of"
    )
    result = cli("run", "superres", *given, "steps=x")
    one_line_error(result, 1, "recipe 'superres': steps: expected an integer, got 'x'")
    # an earlier name is refused, naming the new one, in a recipe as on the command line
    result = cli("run", "superres", *given, "iterations=2")
    one_line_error(result, 1, "recipe 'superres': iterations: renamed; use iters")
    one_line_error(cli("run", "superres"), 1, "missing key 'image'")
    one_line_error(cli("run", "nope"), 1, "recipe 'nope'")
    one_line_error(
        cli("run", "decompose", "image=x.png", "output=o", "fg=a", "bg=b", "noise_level=1.5"),
        1,
        "noise_level",
    )
    result = cli(
        "run",
        "mask",
        f"image={small_images / 'ref.png'}",
        f"output={small_images / 'out.png'}",
        "model=/nonexistent/model",
    )
    one_line_error(result, 2, "/nonexistent/model")
    no_outputs(small_images)


def test_repeatable_options_take_lists_and_repeated_overrides(cli, tmp_path):
    base = ["run", "decompose", "--dry-run", "image=x.png", "output=o", "bg=b"]
    result = cli(*base, "fg=a cat")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["parameters"]["fg"] == ["a cat"]
    result = cli(*base, "fg=a cat", "fg=a dog")
    assert json.loads(result.stdout)["parameters"]["fg"] == ["a cat", "a dog"]
    recipe = tmp_path / "three.toml"
    recipe.write_text('task = "decompose"\nfg = ["a cat", "a dog"]\nbg = "grass"\n')
    result = cli("run", str(recipe), "--dry-run", "image=x.png", "output=o")
    assert json.loads(result.stdout)["parameters"]["fg"] == ["a cat", "a dog"]
    result = cli("run", str(recipe), "--dry-run", "image=x.png", "output=o", "fg=a fox")
    assert json.loads(result.stdout)["parameters"]["fg"] == ["a fox"]  # overrides replace


def test_run_dry_run_prints_the_resolved_parameters(cli):
    result = cli("run", "style", "--dry-run", "style=a.png", "prompt=p", "output=o.png")
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["task"] == "style" and printed["parameters"]["guidance"] == 2.0
    assert printed["parameters"]["seed"] is None
