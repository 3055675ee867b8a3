"""Recipes: the bundled presets, checked against their task's command, lookup, bad files."""

from __future__ import annotations

import json
import re

import click
import pytest

from layerdecomp.cli import main
from layerdecomp.layers import DecomposeConfig
from layerdecomp.options import option_fields
from layerdecomp.recipes import RecipeError, bundled_dir, list_recipes, load_recipe
from layerdecomp.tasks import InpaintConfig, StyleConfig, SuperresConfig
from layerdecomp.tasks.constraint import ConstraintConfig
from solvers import Schedule

REQUIRED = {
    "inpaint": ["image=a.png", "mask=m.png", "output=o.png"],
    "superres": ["image=a.png", "output=o.png"],
    "style": ["style=a.png", "prompt=p", "output=o.png"],
    "decompose": ["image=a.png", "output=o", "fg=a fox", "bg=stripes"],
}
CONFIGS = {
    "inpaint": InpaintConfig,
    "superres": SuperresConfig,
    "style": StyleConfig,
    "decompose": DecomposeConfig,
    "constrain": ConstraintConfig,
}


def resolved(cli, name, *overrides):
    result = cli("run", name, "--dry-run", *overrides)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["parameters"]


def test_every_task_has_a_bundled_recipe_shipped_inside_the_package(cli):
    known = list_recipes()
    for task, required in REQUIRED.items():
        assert known[task] == bundled_dir() / f"{task}.toml"
        recipe = load_recipe(task)
        assert recipe.task == task and recipe.description
        assert set(recipe.values) <= set(resolved(cli, task, *required))


def test_recipes_carry_the_authors_settings(cli):
    sr = resolved(cli, "superres", *REQUIRED["superres"])
    assert (sr["steps"], sr["iters"], str(sr["lam"]), sr["scale"]) == (20, 10, "constant:0.1", 4)
    style = resolved(cli, "style", *REQUIRED["style"])
    assert (style["steps"], style["iters"], style["guidance"]) == (20, 5, 2.0)
    assert (str(style["lam"]), style["block"]) == ("linear:0.5:0.1", 2)
    assert style["clip_model"] == "ViT-B-16"
    inpaint = resolved(cli, "inpaint", *REQUIRED["inpaint"])
    assert (inpaint["steps"], inpaint["iters"], inpaint["guidance"]) == (20, 5, 0.0)
    assert inpaint["prompt"] == ""
    assert resolved(cli, "decompose", *REQUIRED["decompose"])["samples"] == 5  # K of §4.2


@pytest.mark.parametrize("command", sorted(CONFIGS))
def test_every_config_option_is_a_command_option_with_the_configs_default_and_bounds(command):
    """The options are generated from the config's fields (one declaration): every leaf of the
    tree is an option of the command under its own name, with the field's default, help and
    bounds."""
    cmd = main.get_command(None, command)
    ctx = click.Context(cmd)
    options = {p.name: p for p in cmd.params}
    for name, leaf in option_fields(CONFIGS[command]).items():
        assert name in options, f"{command}: no option for {name}"
        default = options[name].get_default(ctx)
        if isinstance(leaf.default, Schedule):
            default = Schedule.parse(default)
        assert default == leaf.default, name
        assert options[name].help == leaf.help
        if leaf.meta.get("ge") is not None and isinstance(options[name].type, click.IntRange):
            assert options[name].type.min == leaf.meta["ge"]


def test_overrides_go_through_the_options_types(cli):
    params = resolved(cli, "superres", *REQUIRED["superres"], "scale=8", "guidance=1.5")
    assert params["scale"] == 8 and params["guidance"] == 1.5
    assert resolved(cli, "inpaint", *REQUIRED["inpaint"], "paste_back=false")["paste_back"] is False


@pytest.mark.parametrize(
    "text, message",
    [
        ('task = "superres"\nfoo = 1\n', "foo: not an option of superres"),
        ('task = "superres"\nsteps = "20"\n', "steps: expected an integer, got '20'"),
        ('task = "superres"\nguidance = true\n', "guidance: expected a number, got True"),
        ('task = "superres"\nsteps = 0\n', "steps: expected ≥ 1, got 0"),
        ('task = "superres"\nlam = [1]\n', "lam: '[1]' is not a schedule"),
        ('task = "superres"\nlam = "cosine"\n', "lam: 'cosine' is not a schedule"),
        ('task = "superres"\nlam_start = 0.5\n', "lam_start: renamed; use lam linear:START:END"),
        ('task = "decompose"\nrestarts = 2\n', "restarts: renamed; use runs"),
        ('task = "decompose"\nnoise_level = 1.5\n', "noise_level: expected in (0, 1), got 1.5"),
        ("steps = 20\n", "'task' must name a task"),
        ('task = "nope"\n', "unknown task 'nope' (known: inpaint, superres, style, decompose"),
        ("task = [\n", "invalid TOML"),
    ],
)
def test_bad_recipe_files_are_one_line_naming_the_key(tmp_path, cli, one_line_error, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    one_line_error(cli("run", path, "image=a.png", "output=o.png"), 1, f"recipe '{path}'", message)


def test_a_missing_key_says_how_to_give_it(cli, one_line_error):
    one_line_error(cli("run", "superres"), 1, "missing key 'image' (give image=PATH)")


def test_unknown_recipe_name_lists_the_known_ones(tmp_path):
    with pytest.raises(RecipeError, match="'nope': not a recipe \\(known: .*superres"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe(tmp_path / "absent.toml")


def test_a_constraint_name_is_a_recipe_of_the_constrain_command(tmp_path, cli):
    assert load_recipe("downsample", ["downsample"]).task == "downsample"
    base = ["image=a.png", "output=o.png"]
    params = resolved(
        cli, "downsample", *base, "constraint.scale=2", "method=vae_newton", "lam=0.3"
    )
    assert params["name"] == "downsample" and str(params["lam"]) == "constant:0.3"
    assert params["arguments"] == [["scale", 2], ["method", "vae_newton"]]
    path = tmp_path / "sr.toml"
    path.write_text('task = "downsample"\nlam = "dynamic"\n[constraint]\nscale = 2\n')
    params = resolved(cli, path, *base, "iters=2")
    assert params["lam"] == "dynamic:0.5" and params["arguments"] == [["scale", 2]]


def test_recipes_in_the_working_directory_are_found(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "big.toml").write_text('task = "superres"\nscale = 8\n')
    monkeypatch.chdir(tmp_path)
    assert load_recipe("big").values["scale"] == 8
    assert load_recipe("superres").path == bundled_dir() / "superres.toml"  # bundled first


# The numbers a recipe's description quotes, by the option they must equal: K is the solver's
# Newton iterations (`iters`) in every recipe, never the layer engine's `samples`.
QUOTED = {
    r"\bK\s*=\s*(\d+)": "iters",
    r"(\d+) samples\b": "samples",
    r"(\d+) steps\b": "steps",
    r"(\d+) updates\b": "updates",
    r"(\d+) runs\b": "runs",
    r"\bnoise ([\d.]+)": "noise_level",
}


@pytest.mark.parametrize("task", sorted(REQUIRED))
def test_a_recipe_description_quotes_its_own_values(cli, task):
    description = load_recipe(task).description
    params = resolved(cli, task, *REQUIRED[task])
    quoted = {
        key: float(match)
        for pattern, key in QUOTED.items()
        for match in re.findall(pattern, description)
    }
    assert quoted, description
    assert {key: float(params[key]) for key in quoted} == quoted, description
