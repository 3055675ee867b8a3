"""What a new user meets first (#26): degenerate inputs, reruns into a finished folder, outputs
that cannot be written, the time a run reports, and the small refusals of ``run``."""

from __future__ import annotations

import json
import re

import pytest
from PIL import Image

import layerdecomp.cli.execute as decompose_command
from tests.layerdecomp.cli.test_decompose import FAST, save_disk, toy  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

PROMPTS = ["--fg", "red", "--bg", "blue"]


def test_a_1x1_image_is_refused_by_every_task(tmp_path, toy, cli, one_line_error):  # noqa: F811
    Image.new("RGB", (1, 1), (9, 9, 9)).save(tmp_path / "dot.png")
    Image.new("L", (1, 1), 255).save(tmp_path / "hole.png")
    out = tmp_path / "out"
    result = cli("decompose", tmp_path / "dot.png", *PROMPTS, "-o", out, *FAST)
    one_line_error(result, 1, "1x1 px is too small for decompose", "smallest it takes is 2x2")
    assert not out.exists()
    args = ("--mask", tmp_path / "hole.png", "--steps", "1", "--iters", "1", "-q")
    result = cli("inpaint", tmp_path / "dot.png", *args, "-o", tmp_path / "a.png")
    one_line_error(result, 1, "1x1 px is too small for inpaint")
    result = cli("superres", tmp_path / "dot.png", "--scale", "2", "-o", tmp_path / "b.png", "-q")
    one_line_error(result, 1, "1x1 px is too small for superres")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dot.png", "hole.png"]


def test_a_single_image_is_not_silently_overwritten(tmp_path, toy, cli, one_line_error):  # noqa: F811
    save_disk(tmp_path / "disk.png")
    out = tmp_path / "out"
    assert cli("decompose", tmp_path / "disk.png", *PROMPTS, "-o", out, *FAST).exit_code == 0
    made = (out / "run.json").read_text()
    # the same settings again: kept, not redone
    rerun = [*FAST[:-1]]  # without -q: it says what it did
    result = cli("decompose", tmp_path / "disk.png", *PROMPTS, "-o", out, *rerun)
    assert result.exit_code == 0 and "skipped" in result.stderr, result.output
    assert (out / "run.json").read_text() == made and len(toy) == 1
    # other prompts: refused, the earlier result left as it was
    other = ["--fg", "green", "--bg", "blue"]
    result = cli("decompose", tmp_path / "disk.png", *other, "-o", out, *FAST)
    one_line_error(result, 1, "made with fg 'red', not 'green'", "--overwrite")
    assert (out / "run.json").read_text() == made and len(toy) == 1
    result = cli("decompose", tmp_path / "disk.png", *other, "-o", out, *FAST, "--overwrite")
    assert result.exit_code == 0, result.output
    assert json.loads((out / "run.json").read_text())["fg_prompt"] == "green"


@pytest.mark.parametrize("command", ["decompose", "inpaint", "superres", "inpaint-folder"])
def test_an_output_that_cannot_be_written_fails_before_the_model(
    tmp_path,
    toy,  # noqa: F811
    cli,
    one_line_error,
    command,
):
    save_disk(tmp_path / "disk.png")
    Image.new("L", (16, 16), 255).save(tmp_path / "mask.png")
    extra = {
        "decompose": [*PROMPTS, "-o", "/proc/nope"],
        "inpaint": ["--mask", tmp_path / "mask.png", "-o", "/proc/nope.png"],
        "superres": ["-o", "/proc/nope.png"],
        "inpaint-folder": ["--mask", tmp_path / "mask.png", "-o", "/proc/nope"],
    }[command]
    image = tmp_path if command.endswith("folder") else tmp_path / "disk.png"
    result = cli(command.split("-")[0], image, *extra, "-q")
    one_line_error(result, 1, "cannot be written in '/proc'", "(no such file or directory)")
    assert toy == [], "the model was loaded before the output was checked"
    assert "Error" not in result.stderr and "Errno" not in result.stderr


def test_an_output_below_a_file_is_refused_before_the_model(tmp_path, toy, cli, one_line_error):  # noqa: F811
    save_disk(tmp_path / "disk.png")
    (tmp_path / "file").write_text("x")
    result = cli("decompose", tmp_path / "disk.png", *PROMPTS, "-o", tmp_path / "file" / "o", "-q")
    one_line_error(result, 1, "is a file")
    assert toy == []


def test_the_reported_time_is_the_whole_time(tmp_path, toy, cli, monkeypatch):  # noqa: F811
    save_disk(tmp_path / "disk.png")
    monkeypatch.setattr(decompose_command, "_pymatting_compiled", lambda: False)
    out = tmp_path / "out"
    result = cli("decompose", tmp_path / "disk.png", *PROMPTS, "-o", out, *FAST[:-1])
    assert result.exit_code == 0, result.output
    line = [line for line in result.stderr.splitlines() if line.startswith("wrote")][0]
    timings = json.loads((out / "run.json").read_text())["timings"]
    printed = float(re.search(r" in ([0-9.]+)s", line).group(1))
    assert printed == pytest.approx(timings["load"] + timings["image_total"], abs=0.051)
    assert printed >= timings["image_total"] - 0.05
    assert "pymatting compiling its kernels" in line, line
    monkeypatch.setattr(decompose_command, "_pymatting_compiled", lambda: True)
    result = cli("decompose", tmp_path / "disk.png", "--fg", "x", *PROMPTS[2:], "-o", out / "b")
    assert "compiling" not in result.stderr


def test_run_dry_run_refuses_blend_as_run_does(cli, one_line_error):
    keys = ["image=a.png", "output=b.png"]
    for args in (["run", "blend"], ["run", "--dry-run", "blend", *keys], ["run", "blend", *keys]):
        one_line_error(cli(*args), 1, "constraint 'blend' cannot run on one image", "two layers")


def test_a_bad_number_is_named_as_a_number(small_images, cli, one_line_error):
    image = small_images / "small.png"
    result = cli("run", "superres", f"image={image}", "output=o.png", "steps=ten")
    one_line_error(result, 1, "steps: expected an integer, got 'ten'")
    assert "integer range" not in result.stderr
    result = cli("superres", image, "-o", small_images / "o.png", "--guidance", "much")
    assert "'much' is not a valid float" in result.stderr and "float range" not in result.stderr


def test_analyze_jacobian_help_says_one_thing_of_its_precision(cli):
    text = " ".join(cli("analyze", "jacobian", "--help").output.split())
    assert "float32" in text and "float16 on GPU" not in text


def test_an_unexpected_os_error_is_worded_for_a_person(tmp_path, toy, cli, monkeypatch):  # noqa: F811
    """A file system that fails mid-run (the checks before could not foresee it): the reason and
    the path, no exception class, no errno."""
    save_disk(tmp_path / "disk.png")

    def fail(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory", "/gone/run.json")

    monkeypatch.setattr(decompose_command, "write", fail)
    result = cli("decompose", tmp_path / "disk.png", *PROMPTS, "-o", tmp_path / "o", "-q")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "error: '/gone/run.json': no such file or directory (set LAYERDECOMP_DEBUG=1 for details)"
    )


def test_the_size_note_fires_at_four_times_the_native_pixels(capsys):
    """mini (64 px) at 128 x 128: 4x its pixels, where its results break; said before the run."""
    from types import SimpleNamespace

    from layerdecomp.cli.options import warn_if_large

    unet = SimpleNamespace(config=SimpleNamespace(sample_size=16))
    mini_like = SimpleNamespace(pipeline=SimpleNamespace(unet=unet), factor=4)
    warn_if_large("superres", mini_like, (128, 128), 0)
    note = capsys.readouterr().err
    assert note.startswith("note: superres works at 128x128 px, 4x the pixels of the model's")
    assert "expect artefacts" in note and "--tile 64" in note
    warn_if_large("superres", mini_like, (96, 96), 0)
    warn_if_large("superres", mini_like, (128, 128), 64)
    assert capsys.readouterr().err == ""
