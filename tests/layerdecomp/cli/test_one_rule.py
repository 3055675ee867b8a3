"""One rule for every task command (issue: one declaration per task): a single-image rerun is
skipped or refused and ``--overwrite`` replaces it, missing parent folders are made, an earlier
option name is refused naming the new one, and Ctrl+C exits 130."""

from __future__ import annotations

import json

import pytest

from tests.layerdecomp.cli.test_flow_models import files  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("one_thread")

FAST = ["--steps", "2", "--iters", "1", "--seed", "5"]


def test_a_single_inpainting_is_skipped_refused_or_replaced(files, sd1_folder, cli):  # noqa: F811
    out = files / "deeper" / "still" / "out.png"  # parent folders that do not exist yet
    args = ["inpaint", files / "in.png", "--mask", files / "mask.png", "-o", out]
    args += ["--model", sd1_folder, *FAST]
    first = cli(*args)
    assert first.exit_code == 0, first.output
    made = out.with_suffix(".json").read_text()
    again = cli(*args)
    assert again.exit_code == 0 and f"skipped {out}: made with these settings" in again.stderr
    assert out.with_suffix(".json").read_text() == made  # not recomputed
    other = cli(*args, "--steps", "3")
    assert other.exit_code == 1
    assert other.stderr.strip() == (
        f"error: {out}: made with steps 2, not 3; use --overwrite to replace it"
    )
    assert out.with_suffix(".json").read_text() == made  # left as it was
    replaced = cli(*args, "--steps", "3", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert json.loads(out.with_suffix(".json").read_text())["parameters"]["steps"] == 3


def test_superres_makes_its_output_folder(small_images, sd1_folder, cli):
    out = small_images / "new" / "big.png"
    result = cli(
        "superres",
        small_images / "small.png",
        "-o",
        out,
        "--model",
        sd1_folder,
        "--scale",
        "2",
        *FAST,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.with_suffix(".json").is_file()


@pytest.mark.parametrize(
    "command, old, new",
    [
        ("decompose", "--restarts", "runs"),
        ("decompose", "--iterations", "updates"),
        ("decompose", "--newton-iters", "iters"),
        ("inpaint", "--iterations", "iters"),
        ("superres", "--lam-start", "lam linear:START:END"),
    ],
)
def test_an_earlier_name_is_refused_naming_the_new_one(
    files,  # noqa: F811
    cli,
    one_line_error,
    command,
    old,
    new,
):
    inputs = {
        "decompose": [files / "in.png", "--fg", "a", "--bg", "b", "-o", files / "out"],
        "inpaint": [files / "in.png", "--mask", files / "mask.png", "-o", files / "out.png"],
        "superres": [files / "in.png", "-o", files / "out.png"],
    }[command]
    result = cli(command, *inputs, old, "2")
    one_line_error(result, 1, f"{old[2:].replace('-', '_')}: renamed; use {new}")
    assert not (files / "out").exists() and not (files / "out.png").exists()


def test_inpaints_restarts_are_its_own_warm_restarts(cli):
    """``--restarts`` keeps one meaning: inpaint's warm restarts (decompose refuses it)."""
    text = " ".join(cli("inpaint", "--help").output.split())
    assert "--restarts INTEGER Warm restarts" in text
    assert "--restarts" not in cli("decompose", "--help").output


def test_ctrl_c_exits_130(files, cli, monkeypatch):  # noqa: F811
    import layerdecomp.io

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as if Ctrl+C came while the image was read

    monkeypatch.setattr(layerdecomp.io, "open_image", interrupted)
    result = cli("superres", files / "in.png", "-o", files / "out.png", "-q")
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == "error: interrupted"
