"""Fingerprints: what they hold, under which names, and the one line that says what differs."""

from __future__ import annotations

import hashlib

from layerdecomp.runs import difference, file_sha256, fingerprint
from layerdecomp.runs.fingerprint import package_version
from layerdecomp.tasks.catalog import TASKS
from layerdecomp.tasks.declare import request


def _request(**changes):
    values = {
        "image": "in.png",
        "mask": "m.png",
        "output": "out.png",
        "iters": 3,
        "model_config": "cfg",
        "seed": None,
        "dtype": "auto",
        "device": "cuda:1",
        "quiet": True,
        "overwrite": False,
        "batch_images": 4,
    }
    return request(TASKS["inpaint"], {**values, **changes})


def test_sha256_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f.bin").write_bytes(data)
    assert file_sha256(tmp_path / "f.bin", chunk=1000) == hashlib.sha256(data).hexdigest()


def test_what_a_fingerprint_holds(tmp_path):
    """The task's inputs, every option of its config under its one name, the model options that
    decide the result, the seed, the resolved precision and the version."""
    from layerdecomp.options import as_dict

    (tmp_path / "in.png").write_bytes(b"image bytes")
    inputs = {"image": tmp_path / "in.png", "mask": tmp_path / "in.png"}
    stamp = fingerprint(_request(), inputs, seed=7, dtype="float16")
    digest = hashlib.sha256(b"image bytes").hexdigest()
    assert stamp == {
        "image sha256": digest,
        "mask sha256": digest,
        **as_dict(_request().config),
        "model": "mini",
        "model_config": "cfg",
        "compile": "none",
        "lora": [],
        "seed": 7,
        "dtype": "float16",
        "layerdecomp": package_version(),
    }
    assert stamp["iters"] == 3 and stamp["paste_back"] is True
    # where the run happens, how loudly and how batched do not decide the result
    quieter = _request(device="cpu", quiet=False, overwrite=True, batch_images=1, output="x")
    assert fingerprint(quieter, inputs, seed=7, dtype="float16") == stamp
    given = fingerprint(_request(), inputs, seed=7, dtype="float16", hashes={"image": "h"})
    assert given["image sha256"] == "h" and given["mask sha256"] == digest


def test_prompts_enter_and_no_earlier_name_can(tmp_path):
    """decompose's prompts are in its fingerprint; an earlier name (``--restarts`` for
    ``--runs``) is refused before a fingerprint exists, so a record cannot name an option the
    run did not use."""
    import pytest

    from layerdecomp.errors import InputError

    (tmp_path / "in.png").write_bytes(b"x")
    values = {"image": "in.png", "fg": ("a cat",), "bg": "grass", "output": "o", "runs": 1}
    stamp = fingerprint(
        request(TASKS["decompose"], values), {"image": tmp_path / "in.png"}, seed=0, dtype="f"
    )
    assert stamp["fg"] == ["a cat"] and stamp["bg"] == "grass" and stamp["runs"] == 1
    assert "restarts" not in stamp
    with pytest.raises(InputError, match="^restarts: renamed; use runs$"):
        request(TASKS["decompose"], {**values, "restarts": 1})


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


def test_a_lora_enters_by_its_content_and_scale_not_its_path(tmp_path):
    """A LoRA retrained into the same file makes another fingerprint; the same bytes at another
    path, or in a folder of their own, the same one; the scale as a number."""
    import re
    import shutil

    import pytest

    from layerdecomp.errors import ModelSpecError

    (tmp_path / "in.png").write_bytes(b"x")
    inputs = {"image": tmp_path / "in.png", "mask": tmp_path / "in.png"}
    lora = tmp_path / "style.safetensors"

    def stamp(*entries):
        return fingerprint(_request(lora=entries), inputs, seed=1, dtype="float32")

    lora.write_bytes(b"first training")
    first = stamp(f"{lora}:0.8")
    assert first["lora"] == [hashlib.sha256(b"first training").hexdigest() + ":0.8"]
    lora.write_bytes(b"second trainin")  # retrained in place, same size
    second = stamp(f"{lora}:0.8")
    assert second["lora"] != first["lora"]
    why = difference(first, second)
    assert why.startswith("made with other LoRA adapters (sha256 ") and ":0.8, now sha256 " in why
    elsewhere = tmp_path / "copies" / "renamed.safetensors"
    elsewhere.parent.mkdir()
    shutil.copyfile(lora, elsewhere)
    assert stamp(f"{elsewhere}:0.80") == second  # same bytes, same scale: the same run
    assert stamp(str(elsewhere.parent) + ":0.8") == second  # a folder holding just that file
    assert stamp(f"{lora}:0.5")["lora"] != second["lora"]
    assert stamp(str(lora))["lora"] == [hashlib.sha256(b"second trainin").hexdigest() + ":1.0"]
    (elsewhere.parent / "more.safetensors").write_bytes(b"another")
    assert stamp(str(elsewhere.parent))["lora"] != stamp(str(elsewhere))["lora"]
    assert stamp()["lora"] == []
    given = fingerprint(_request(lora=(str(lora),)), inputs, seed=1, dtype="f", lora=["h:1.0"])
    assert given["lora"] == ["h:1.0"]  # made once by a folder run, not hashed again
    gone = str(tmp_path / "gone.safetensors")
    with pytest.raises(ModelSpecError, match=rf"^lora {re.escape(repr(gone))}: no such file or "):
        stamp(gone)
    old = {**second, "lora": [f"{lora}:0.8"]}  # recorded by an earlier version: by path
    assert difference(old, second).startswith(f"made with other LoRA adapters ('{lora}:0.8', now")
