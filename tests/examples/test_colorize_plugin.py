"""The third-party plugin example: installed as a real distribution, it registers ``colorize``
through the ``layerdecomp.constraints`` entry-point group, is listed by ``layerdecomp constraints``
and runs through ``layerdecomp run``."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layerdecomp.constraints import registry

PLUGIN = Path(__file__).resolve().parents[2] / "examples" / "plugins" / "layerdecomp-colorize"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The plugin really installed by pip, offline, into a private ``--target`` folder.

    Nothing is installed into the running environment: the folder goes on ``sys.path`` (in this
    process) or ``PYTHONPATH`` (in a subprocess) for the tests that need it. The build runs without
    isolation (no network), so the test environment needs setuptools, the plugin's build backend.
    """
    root = tmp_path_factory.mktemp("plugin")
    source, target = root / "source", root / "site"
    shutil.copytree(PLUGIN, source)  # pip writes build/ and *.egg-info next to the sources
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index"]
    command += ["--no-build-isolation", "--target", str(target), str(source)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip install of the example plugin failed:\n{proc.stderr}"
    infos = list(target.glob("layerdecomp_colorize-*.dist-info"))
    assert len(infos) == 1, f"no dist-info from pip: {sorted(p.name for p in target.iterdir())}"
    entry_points = (infos[0] / "entry_points.txt").read_text()
    assert "[layerdecomp.constraints]" in entry_points
    assert "colorize = layerdecomp_colorize:Colorize" in entry_points
    return target


@pytest.fixture
def on_path(installed, monkeypatch):
    """The install folder on sys.path, with a registry that forgets the plugin afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_loaded_entry_points", set())
    monkeypatch.setattr(registry, "_FAILED", {})
    monkeypatch.syspath_prepend(str(installed))
    importlib.invalidate_caches()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield installed
    torch.set_num_threads(previous)
    sys.modules.pop("layerdecomp_colorize", None)


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from tests.layerdecomp.tiny_pipelines import sd_pipeline

    root = tmp_path_factory.mktemp("tiny-sd")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sd_pipeline(root / "tok").save_pretrained(root / "sd1")
    finally:
        torch.set_num_threads(previous)
    return root / "sd1"


def test_the_installed_plugin_registers_colorize(on_path):
    from layerdecomp.constraints import available, build

    known = available()
    assert "colorize" in known
    cls = known["colorize"]
    assert cls.__module__ == "layerdecomp_colorize"
    assert cls.description().startswith("Colourisation: keep the luminance")
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    constraint = cls.from_image(image)
    x0 = torch.randn(2, 3, 8, 8, generator=g)
    e, residual = constraint(x0)
    assert e.shape == x0.shape and residual.shape == (2,)
    assert (constraint(x0 + 0.1 * e)[1] < residual).all()
    assert build("colorize", y=constraint.y)(image)[1].max() < 1e-6  # the image meets itself


def test_layerdecomp_constraints_lists_it_in_a_fresh_process(installed):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, "-m", "layerdecomp", "constraints"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("colorize "))
    assert "Colourisation" in line and line.endswith("[layerdecomp-colorize 0.1.0]")
    assert any(x.startswith("mask ") for x in proc.stdout.splitlines())


def test_it_runs_through_layerdecomp_run(on_path, tiny_sd, tmp_path):
    from layerdecomp.cli import main

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (9, 7), dtype=np.uint8), mode="L").save(
        tmp_path / "gray.png"
    )
    fast = [f"model={tiny_sd}", "steps=2", "iters=1", "seed=0", "quiet=true"]
    for recipe, name in ((PLUGIN / "colorize.toml", "a.png"), ("colorize", "b.png")):
        out = tmp_path / name
        result = CliRunner().invoke(
            main, ["run", str(recipe), f"image={tmp_path / 'gray.png'}", f"output={out}", *fast]
        )
        assert result.exit_code == 0, result.output
        assert Image.open(out).size == (7, 9)
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["task"] == "colorize" and meta["parameters"]["constraint"] == "colorize"
        assert meta["nfe"] == 2 * (1 + 2)


def test_the_plugin_recipe_loads(on_path):
    """The recipe loader on the plugin's recipe (kept apart: the loader's API is changing)."""
    from layerdecomp.recipes import load_recipe

    assert load_recipe(PLUGIN / "colorize.toml").description.startswith("Colourise")
