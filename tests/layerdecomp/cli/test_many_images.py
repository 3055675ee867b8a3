"""Folder runs with mini: two processes under torchrun, runs killed with SIGKILL and resumed,
refusal of outputs made with other settings, and inpaint's batches of images.

The reference is one uninterrupted single-process run (in-process, click's runner); the other
runs go through real processes where a process has to die or be several.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from layerdecomp.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

SEED = 11
FAST = ["--updates", "1", "--samples", "2", "--runs", "1", "--iters", "1"]
FAST += ["--work-side", "32", "-q"]
PROMPTS = ["--fg", "a cat", "--bg", "stripes"]
PNGS = ("foreground.png", "background.png", "mask.png", "recomposed.png", "sheet.png")
NAMES = [f"img{i}" for i in range(6)]

KILLER = """
import os, signal, sys
from layerdecomp.runs import manifest

real = manifest.Manifest.record
done = []


def record(self, image, output, status, *rest):
    real(self, image, output, status, *rest)
    if status == "done":
        done.append(output)
        if sys.argv[1] == "after-first":
            os.kill(os.getpid(), signal.SIGKILL)


class Os:  # layerdecomp.io's os: the third rename of the second image never happens
    renames = 0

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, source, target):
        if done:
            Os.renames += 1
            if Os.renames == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        os.replace(source, target)


manifest.Manifest.record = record
if sys.argv[1] == "mid-write":
    import layerdecomp.io

    layerdecomp.io.os = Os()
from layerdecomp.cli import main

main(sys.argv[2:], prog_name="layerdecomp")
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    env.pop("LAYERDECOMP_DEBUG", None)
    return env


def _images(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in NAMES:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(folder / f"{name}.png")
    return folder


def _run(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Six images decomposed by one uninterrupted process with seed SEED."""
    root = tmp_path_factory.mktemp("many")
    images = _images(root / "images")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = _run("decompose", images, *PROMPTS, *FAST, "--seed", SEED, "-o", root / "one")
    finally:
        torch.set_num_threads(previous)
    assert result.exit_code == 0, result.output
    return images, root / "one"


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def _same_results(out: Path, expected: Path) -> None:
    """Every image's folder complete, with no leftover, and its pictures equal bit for bit."""
    for name in NAMES:
        files = sorted(p.name for p in (out / name).iterdir())
        assert files == sorted(p.name for p in (expected / name).iterdir()), name
        for png in PNGS:
            assert (out / name / png).read_bytes() == (expected / name / png).read_bytes(), png
        meta = json.loads((out / name / "run.json").read_text())
        want = json.loads((expected / name / "run.json").read_text())
        assert meta["fingerprint"] == want["fingerprint"] and meta["seed"] == SEED


def test_two_processes_under_torchrun_each_take_a_shard(reference, tmp_path):
    images, one = reference
    out = tmp_path / "two"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node", "2", "-m", "layerdecomp", "decompose", str(images)]
    command += [*PROMPTS, *FAST, "-o", str(out)]  # no --seed: rank 0 draws it for both
    proc = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = _manifest(out)
    assert sorted(Path(line["image"]).stem for line in lines) == NAMES  # each exactly once
    assert {line["status"] for line in lines} == {"done"} and len(
        {line["run"] for line in lines}
    ) == 1
    ranks = {Path(line["image"]).stem: line["rank"] for line in lines}
    assert ranks == {name: i % 2 for i, name in enumerate(NAMES)}
    seeds = {json.loads((out / n / "run.json").read_text())["seed"] for n in NAMES}
    assert len(seeds) == 1  # one drawn seed, agreed by both processes
    seed = seeds.pop()
    if seed != SEED:  # the single-process run with the seed the two processes drew
        result = _run("decompose", images, *PROMPTS, *FAST, "--seed", seed, "-o", tmp_path / "o")
        assert result.exit_code == 0, result.output
        one = tmp_path / "o"
    for name in NAMES:
        for png in PNGS:
            assert (out / name / png).read_bytes() == (one / name / png).read_bytes(), name
    assert sorted(p.name for p in out.iterdir()) == [*NAMES, "manifest.jsonl"]


@pytest.mark.parametrize("moment", ["after-first", "mid-write"])
def test_a_killed_run_resumes_with_nothing_lost(reference, tmp_path, moment):
    images, one = reference
    out = tmp_path / "out"
    args = ["decompose", str(images), *PROMPTS, *FAST, "--seed", str(SEED), "-o", str(out)]
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, moment, *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert [line["status"] for line in _manifest(out)] == ["done"]
    assert not (out / "img1" / "run.json").exists()
    if moment == "mid-write":  # two files of img1 renamed into place, the rest left as .tmp
        names = [p.name for p in (out / "img1").iterdir()]
        assert len([n for n in names if not n.endswith(".tmp")]) == 2
        assert any(n.startswith(".") and n.endswith(".tmp") for n in names)
    result = _run(*args)
    assert result.exit_code == 0, result.output
    _same_results(out, one)
    rerun = [(Path(line["output"]).name, line["status"]) for line in _manifest(out)[1:]]
    assert rerun == [("img0", "skipped")] + [(n, "done") for n in NAMES[1:]]


def test_other_prompts_are_refused_then_redone_with_overwrite(reference, tmp_path):
    images, one = reference
    out = tmp_path / "out"
    shutil.copytree(one, out)
    stamps = {n: (out / n / "run.json").stat().st_mtime_ns for n in NAMES}
    other = ["--fg", "a dog", "--bg", "stripes", *FAST, "--seed", SEED, "-o", out]
    result = _run("decompose", images, *other)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"error: {out / 'img0'}: made with fg 'a cat', not 'a dog'; use --overwrite to redo "
        "it (5 more outputs differ too)"
    ]
    assert {n: (out / n / "run.json").stat().st_mtime_ns for n in NAMES} == stamps
    result = _run("decompose", images, *other, "--overwrite")
    assert result.exit_code == 0, result.output
    for name in NAMES:
        meta = json.loads((out / name / "run.json").read_text())
        assert meta["fg_prompt"] == "a dog" and meta["fingerprint"]["fg"] == ["a dog"]
    result = _run("decompose", images, *other)
    assert result.exit_code == 0 and "all 6 images already decomposed" in result.stderr


def _inpaint_inputs(root: Path) -> tuple[Path, Path]:
    """Four 32×32 images and two 24×16, each with a mask of its own name."""
    images, masks = root / "images", root / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(1)
    for i, (w, h) in enumerate([(32, 32)] * 4 + [(24, 16)] * 2):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), np.uint8)).save(images / f"p{i}.png")
        mask = Image.new("L", (w, h), 0)
        mask.paste(255, (2 + i, 3, w // 2 + i, h - 4))
        mask.save(masks / f"p{i}.png")
    return images, masks


def test_inpaint_a_folder_in_batches_of_images(tmp_path):
    images, masks = _inpaint_inputs(tmp_path)
    base = ["inpaint", images, "--mask", masks, "--steps", "2", "--iters", "1", "--seed", "4"]
    result = _run(*base, "-q", "-o", tmp_path / "alone")
    assert result.exit_code == 0, result.output
    result = _run(*base, "-q", "--batch-images", "2", "-o", tmp_path / "batched")
    assert result.exit_code == 0, result.output
    for i in range(6):
        source = np.asarray(Image.open(images / f"p{i}.png"))
        keep = np.asarray(Image.open(masks / f"p{i}.png")) == 0
        alone = np.asarray(Image.open(tmp_path / "alone" / f"p{i}.png")).astype(int)
        batched = np.asarray(Image.open(tmp_path / "batched" / f"p{i}.png")).astype(int)
        assert (batched[keep] == source[keep]).all() and (alone[keep] == source[keep]).all()
        assert np.abs(batched - alone).max() <= 2  # rounding; 2 steps × K = 1 amplify it little
        assert not (batched[~keep] == source[~keep]).all()
        meta = json.loads((tmp_path / "batched" / f"p{i}.json").read_text())
        assert meta["parameters"]["batch_images"] == 2 and meta["seed"] == 4
        assert meta["fingerprint"]["prompt"] == "" and meta["mask"].endswith(f"p{i}.png")
    assert [line["status"] for line in _manifest(tmp_path / "batched")] == ["done"] * 6
    again = _run(*base, "-q", "--batch-images", "3", "-o", tmp_path / "batched")
    assert again.exit_code == 0 and "all 6 images already inpainted" in again.stderr
    other = _run(*base, "--prompt", "a cat", "-o", tmp_path / "batched")
    assert other.exit_code == 1
    assert "p0.png: made with prompt '', not 'a cat'; use --overwrite" in other.stderr


def test_inpaint_folder_bad_input_is_one_line(tmp_path, one_line_error):
    images, masks = _inpaint_inputs(tmp_path)
    base = ["inpaint", images, "--steps", "1", "--iters", "1", "-o", tmp_path / "out"]
    one_line_error(
        _run(*base, "--mask", masks, "--batch-images", "2", "--restarts", "1"),
        1,
        "--batch-images 2: needs --restarts 0",
    )
    (masks / "p3.png").unlink()
    one_line_error(_run(*base, "--mask", masks), 1, "no mask of that name", "p3.png")
    one_line_error(_run(*base, "--mask", images / "p0.png"), 1, "does not match")
    (tmp_path / "file").write_text("")
    one_line_error(
        _run("inpaint", images, "--mask", masks, "-o", tmp_path / "file"), 1, "is a file"
    )
    assert not (tmp_path / "out").exists()
