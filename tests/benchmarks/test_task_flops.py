"""``benchmarks/task_flops.py``: the calls a run makes, counted on the tiny pipeline."""

import runpy
from pathlib import Path

import pytest

from layerdecomp.layers import DecomposeConfig

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "task_flops.py"
bench = runpy.run_path(str(SCRIPT), run_name="task_flops")


@pytest.mark.usefixtures("one_thread")
def test_inpainting_is_one_sample_per_forward_and_one_decode():
    counts = bench["call_counts"]("inpaint")
    assert counts == {"forward": 220, "nfe": 220, "decode": 1, "encode": 1}


@pytest.mark.usefixtures("one_thread")
def test_a_decomposition_batches_every_layer_run_and_sample():
    """Every update draws L·R·K samples through 1 + 2·iters forwards; the orientation check
    denoises the image under each prompt at each level; the final layers draw L·n samples."""
    c = DecomposeConfig()
    layers, per_draw = 2, 1 + 2 * c.refine.iters
    draws = c.em.updates * layers * c.runs * c.samples
    forward = per_draw * draws + c.orient_levels * layers + per_draw * layers * c.final_samples
    counts = bench["call_counts"]("decompose")
    assert counts["forward"] == forward
    assert counts["nfe"] == per_draw * (c.em.updates + 1) + c.orient_levels
    assert counts["decode"] == draws + c.orient_levels * layers + layers * c.final_samples
    assert counts["encode"] == 1


@pytest.mark.usefixtures("one_thread")
def test_the_fast_recipe_does_a_third_of_the_defaults_work():
    """``decompose-fast``: ≤ 864 UNet sample-forwards and ≤ 128 decodes per image (#41's
    targets), against 2,592 and 384 at the defaults."""
    from layerdecomp.recipes import load_recipe

    recipe = load_recipe("decompose-fast")
    options = {k: v for k, v in recipe.values.items() if k != "model"}
    fast = bench["call_counts"]("decompose", **options)
    default = bench["call_counts"]("decompose")
    assert (default["forward"], default["decode"]) == (2592, 384)
    assert (fast["forward"], fast["decode"]) == (744, 120)  # the recipe's comment says so
