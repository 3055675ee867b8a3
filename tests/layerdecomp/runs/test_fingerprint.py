"""Fingerprints: what they hold, under which names, and the one line that says what differs."""

from __future__ import annotations

import hashlib
from pathlib import Path

import click

from layerdecomp.runs import difference, file_sha256, fingerprint
from layerdecomp.runs.fingerprint import option_names, package_version


@click.command()
@click.argument("image")
@click.option("--mask", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path))
@click.option("--fg")
@click.option("--iters", "iterations", type=int)
@click.option("--paste-back/--no-paste-back", default=True)
@click.option("--model-config", type=click.Path(path_type=Path))
@click.option("--prompts", multiple=True)
@click.option("--seed", type=int)
@click.option("--dtype")
@click.option("--device")
@click.option("-q", "--quiet", is_flag=True)
@click.option("--overwrite", is_flag=True)
@click.option("--batch-images", type=int)
def command(**params):
    """A command shaped like the real ones."""


def _params(**changes):
    params = {
        "image": "in.png",
        "mask": Path("m.png"),
        "output": Path("out"),
        "fg": "a cat",
        "iterations": 3,
        "paste_back": True,
        "model_config": Path("cfg"),
        "prompts": ("a", "b"),
        "seed": None,
        "dtype": "auto",
        "device": "cuda:1",
        "quiet": True,
        "overwrite": False,
        "batch_images": 4,
    }
    return {**params, **changes}


def test_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin", chunk=1000) == hashlib.sha256(data).hexdigest()


def test_option_names_are_what_a_user_types():
    names = option_names(command)
    assert names["iterations"] == "--iters" and names["paste_back"] == "--paste-back"
    assert names["output"] == "--output" and names["image"] == "image"


def test_what_a_fingerprint_holds(tmp_path):
    (tmp_path / "in.png").write_bytes(b"image bytes")
    inputs = {"image": tmp_path / "in.png", "mask": tmp_path / "in.png"}
    stamp = fingerprint(command, _params(), inputs, seed=7, dtype="float16")
    digest = hashlib.sha256(b"image bytes").hexdigest()
    assert stamp == {
        "image sha256": digest,
        "mask sha256": digest,
        "--fg": "a cat",
        "--iters": 3,
        "--paste-back": True,
        "--model-config": "cfg",
        "--prompts": ["a", "b"],
        "--seed": 7,
        "--dtype": "float16",
        "layerdecomp": package_version(),
    }
    # where the run happens, how loudly and how batched do not decide the result
    quieter = _params(device="cpu", quiet=False, overwrite=True, batch_images=1, output="x")
    assert fingerprint(command, quieter, inputs, seed=7, dtype="float16") == stamp
    given = fingerprint(command, _params(), inputs, seed=7, dtype="float16", hashes={"image": "h"})
    assert given["image sha256"] == "h" and given["mask sha256"] == digest


def test_the_difference_in_one_phrase():
    base = {"image sha256": "ab" * 32, "--fg": "a cat", "--seed": 1, "layerdecomp": "0.1.0"}
    assert difference(base, dict(base)) is None
    assert difference(base, {**base, "--fg": "a dog"}) == "made with --fg 'a cat', not 'a dog'"
    assert difference(base, {**base, "--seed": 2}) == "made with --seed 1, not 2"
    assert difference(base, {**base, "--seed": 2}, ignore=["--seed"]) is None
    other = difference(base, {**base, "image sha256": "cd" * 32})
    assert other == "made from another image (sha256 abababababab…, now cdcdcdcdcdcd…)"
    assert difference(base, {**base, "layerdecomp": "0.2.0"}) == (
        "made by layerdecomp 0.1.0, not 0.2.0"
    )
    assert difference(base, {**base, "--steps": 20}) == "made without --steps"
    assert difference({**base, "--gone": 1}, base) is None  # an option this version dropped
    assert difference(None, base).startswith("made without a fingerprint")
    listed = difference({"--fg": ["a"]}, {"--fg": ["a", "b"]})
    assert listed == "made with --fg 'a', not 'a' 'b'"
