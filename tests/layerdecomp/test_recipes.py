"""Recipes: the bundled presets, schema validation, overrides, lookup by name, path, constraint."""

from __future__ import annotations

import click
import pytest

from layerdecomp.cli import main
from layerdecomp.recipes import (
    CONSTRAINT_TASK,
    RECIPE_DIR,
    TASKS,
    RecipeError,
    list_recipes,
    load_recipe,
)

BUNDLED = ("inpaint", "superres", "style", "decompose")


def test_every_task_has_a_bundled_recipe_that_validates():
    known = list_recipes()
    for name in BUNDLED:
        assert known[name] == RECIPE_DIR / f"{name}.toml"
        recipe = load_recipe(name)
        assert recipe.task == name and recipe.description
        assert set(recipe.values) <= set(TASKS[name])


def test_recipes_carry_the_defaults_of_the_algorithm_table():
    sr = load_recipe("superres").values
    assert (sr["steps"], sr["iterations"], sr["lam"], sr["scale"]) == (20, 10, 0.1, 4)
    style = load_recipe("style").values
    assert (style["steps"], style["iterations"], style["guidance"]) == (20, 5, 2.0)
    assert (style["lam_start"], style["lam_end"], style["block"]) == (0.5, 0.1, 2)
    assert style["clip_model"] == "ViT-B-16"
    inpaint = load_recipe("inpaint").values
    assert (inpaint["steps"], inpaint["iterations"], inpaint["guidance"]) == (20, 5, 0.0)
    assert inpaint["prompt"] == ""
    decompose = load_recipe("decompose").values
    assert decompose["samples"] == 5  # K of §4.2; the other values are measured (RESULTS.md)


def command_defaults(task: str) -> dict[str, object]:
    """The command's default of each recipe key of ``task`` (recipe keys may name options
    differently)."""
    command = main.get_command(None, task)
    ctx = click.Context(command)
    defaults = {p.name: p.get_default(ctx) for p in command.params}
    aliases = {"mask": "mask_path", "fg": "fg_prompt", "bg": "bg_prompt"}
    if task != "decompose":  # decompose's option is --iterations too
        aliases["iterations"] = "iters"
    return {
        key: defaults[aliases.get(key, key)]
        for key in TASKS[task]
        if aliases.get(key, key) in defaults
    }


def same(default, value) -> bool:
    return str(default) == str(value) or default == value


@pytest.mark.parametrize("task", BUNDLED)
def test_recipe_values_match_the_command_defaults(task):
    """A recipe and its command agree: running it without overrides is the command's default."""
    defaults = command_defaults(task)
    for key, value in load_recipe(task).values.items():
        assert same(defaults[key], value), (key, defaults[key], value)


@pytest.mark.parametrize("task", BUNDLED)
def test_schema_defaults_match_the_command_defaults(task):
    """A key left out of a recipe falls back to the schema's default: it must be the command's."""
    for key, default in command_defaults(task).items():
        param = TASKS[task][key]
        if not param.required:
            assert same(default, param.default), (key, default, param.default)


def test_overrides_are_parsed_and_type_checked():
    recipe = load_recipe("superres").override(
        ["scale=8", "lam=0.2", "quiet=yes", "image=a.png", "output=b.png", "prompt=a = b"]
    )
    values = recipe.resolve()
    assert values["scale"] == 8 and values["lam"] == 0.2 and values["quiet"] is True
    assert values["prompt"] == "a = b" and values["seed"] is None and values["steps"] == 20
    assert load_recipe("superres").values["scale"] == 4  # the loaded recipe is not mutated


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "foo=1",
            "recipe 'superres': unknown key 'foo' (known: allow_pickle, device, direction,",
        ),
        ("steps=abc", "recipe 'superres': key 'steps' expects an integer, got 'abc'"),
        ("steps=1.5", "key 'steps' expects an integer"),
        ("steps=0", "key 'steps' must be ≥ 1"),
        ("scale=3", "key 'scale' must be one of 2, 4, 8, got 3"),
        ("method=magic", "key 'method' must be one of backprop, vae_newton"),
        ("quiet=maybe", "key 'quiet' expects true or false"),
        ("task=style", "'task' cannot be overridden"),
        ("novalue", "override 'novalue': expected KEY=VALUE"),
        ("lam.x=1", "'lam' is not a table"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(RecipeError) as info:
        load_recipe("superres").override([override])
    assert message in str(info.value)


def test_missing_required_key():
    with pytest.raises(RecipeError, match="missing key 'image' \\(give image=PATH\\)"):
        load_recipe("superres").resolve()


@pytest.mark.parametrize(
    "text, message",
    [
        ('task = "superres"\nfoo = 1\n', "unknown key 'foo' (known:"),
        ('task = "superres"\nsteps = "20"\n', "key 'steps' expects an integer, got str '20'"),
        ('task = "superres"\nguidance = true\n', "key 'guidance' expects a number, got bool"),
        ('task = "style"\nlam_start = [1]\n', "key 'lam_start' expects a number"),
        ("steps = 20\n", "missing 'task'"),
        ('task = "nope"\n', "unknown task 'nope' (known: inpaint, superres, style, decompose"),
        ("task = [\n", "invalid TOML"),
    ],
)
def test_bad_recipe_files(tmp_path, text, message):
    path = tmp_path / "mine.toml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert f"recipe '{path}'" in str(info.value) and message in str(info.value)


def test_unknown_recipe_name_lists_the_known_ones(tmp_path):
    with pytest.raises(RecipeError, match="'nope': not a recipe in recipes/ \\(known: .*superres"):
        load_recipe("nope")
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe(tmp_path / "absent.toml")


def test_a_constraint_name_is_a_generic_recipe(tmp_path):
    recipe = load_recipe("downsample")
    assert recipe.task == "downsample" and recipe.schema is CONSTRAINT_TASK
    recipe = recipe.override(["constraint.scale=2", "constraint.method=vae_newton", "lam=0.3"])
    assert recipe.values["constraint"] == {"scale": 2, "method": "vae_newton"}
    assert recipe.values["lam"] == 0.3
    path = tmp_path / "sr.toml"
    path.write_text('task = "downsample"\nlam = [0.5, 0.2]\n[constraint]\nscale = 2\n')
    recipe = load_recipe(path).override({"iterations": 2})
    assert recipe.values["lam"] == [0.5, 0.2] and recipe.values["constraint"] == {"scale": 2}
    assert recipe.to_dict()["path"] == str(path)


def test_recipes_in_the_working_directory_are_found(tmp_path, monkeypatch):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "big.toml").write_text('task = "superres"\nscale = 8\n')
    monkeypatch.chdir(tmp_path)
    assert load_recipe("big").values["scale"] == 8
    assert load_recipe("superres").path == RECIPE_DIR / "superres.toml"  # bundled first
