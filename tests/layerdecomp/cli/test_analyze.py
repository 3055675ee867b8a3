"""``layerdecomp analyze jacobian`` end to end on the tiny pipelines, and its bad input."""

from __future__ import annotations

import csv
import json
import math
import sys

import pytest
from PIL import Image

from layerdecomp.cli.analyze import FILES

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ["--krylov", "3", "--probes", "2", "-q"]


def run_analyze(cli, folder, out, *args):
    return cli("analyze", "jacobian", "--model", folder, "-o", out, *SMALL, *args)


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_writes_the_table_the_plots_and_run_json(tmp_path, sd1_folder, cli):
    out = tmp_path / "out"
    result = run_analyze(cli, sd1_folder, out, "--t", "900", "--t", "300", "--seed", "4")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)  # no temporary file left
    table = read_csv(out / "spectrum.csv")
    assert [r["t"] for r in table] == ["900", "300"]
    markdown = (out / "spectrum.md").read_text(encoding="utf-8").splitlines()
    body = [line for line in markdown if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in body] == ["| 900", "| 300"]
    with Image.open(out / "jacobian_spectrum.png") as image:
        assert image.format == "PNG" and image.size == (1650, 484)
    with Image.open(out / "jacobian_column_row.png") as image:
        assert image.format == "PNG" and image.size == (1144, 814)  # 4 latent channels
    meta = json.loads((out / "run.json").read_text())
    params = meta["parameters"]
    assert meta["command"] == "analyze jacobian" and meta["files"] == list(FILES)
    assert params["timesteps"] == [900, 300] and params["cell_t"] == 500
    assert (params["krylov"], params["probes"], params["seed"]) == (3, 2, 4)
    assert params["dtype"] == "float32" and params["prompt"] == "" and params["exact"] is False
    assert params["model"] == str(sd1_folder) and meta["model"]["kind"] == "sd"
    assert meta["schedule"] == {
        "num_train_timesteps": 1000,
        "valid_timesteps": [0, 999],
        "prediction_type": "epsilon",
    }
    assert meta["latent"] == {"source": "random", "shape": [1, 4, 8, 8], "work_size": [16, 16]}
    for record, line in zip(meta["rows"], table, strict=True):
        assert float(line["top_jacobian"]) == record["top"]["jacobian"]
        assert float(line["asymmetry"]) == record["asymmetry"]
        assert record["nfe"] == 1 + 3 * 2 * 3 + 2 * 2 and record["backward"] == 2 * 3 + 2
        assert all(math.isfinite(v) for v in record["top"].values())
    assert meta["column_row"]["t"] == 500 and meta["column_row"]["cell"] == [0, 4, 4]
    assert meta["nfe"] == sum(r["nfe"] for r in meta["rows"]) + 3
    assert set(meta["timings"]) == {"load", "spectrum", "column_row_and_plots", "total"}
    assert {"layerdecomp", "torch", "diffusers", "matplotlib"} <= set(meta["versions"])


def test_the_same_seed_gives_the_same_table(tmp_path, sd1_folder, cli):
    tables = []
    for name, seed in (("a", "9"), ("b", "9"), ("c", "10")):
        result = run_analyze(cli, sd1_folder, tmp_path / name, "--t", "500", "--seed", seed)
        assert result.exit_code == 0, result.output
        tables.append((tmp_path / name / "spectrum.csv").read_text())
    assert tables[0] == tables[1]
    assert tables[0] != tables[2]


def test_an_image_at_a_size_and_the_dense_jacobian(small_images, sd1_folder, cli):
    out = small_images / "out"
    args = ["--image", small_images / "ref.png", "--size", "16", "--t", "700", "--exact"]
    result = run_analyze(cli, sd1_folder, out, *args, "--seed", "1")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["latent"] == {"source": "image", "shape": [1, 4, 6, 8], "work_size": [16, 12]}
    assert meta["parameters"]["image"] == str(small_images / "ref.png")
    (line,) = read_csv(out / "spectrum.csv")
    exact = meta["rows"][0]["exact"]
    assert float(line["exact_asymmetry"]) == exact["asymmetry"] and exact["jacobian"] > 0
    assert "dense J" in (out / "spectrum.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("family", ["sdxl", "pixel", "sd3", "flux"])
def test_every_model_family(tmp_path, family, cli, request):
    folder = request.getfixturevalue(f"{family}_folder")
    out = tmp_path / "out"
    result = run_analyze(cli, folder, out, "--t", "600", "--seed", "2")
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "run.json").read_text())
    assert meta["model"]["kind"] == family
    flow = family in ("sd3", "flux")
    assert meta["schedule"]["prediction_type"] == ("flow" if flow else "epsilon")
    assert meta["schedule"]["valid_timesteps"] == ([1, 1000] if flow else [0, 999])
    assert [r["t"] for r in read_csv(out / "spectrum.csv")] == ["600"]
    assert all(math.isfinite(v) for v in meta["rows"][0]["top"].values())


def test_a_timestep_outside_the_schedule(tmp_path, sd1_folder, cli, one_line_error):
    out = tmp_path / "out"
    result = run_analyze(cli, sd1_folder, out, "--t", "500", "--t", "1000")
    one_line_error(result, 1, "timestep 1000 is outside the model's schedule (0 to 999")
    assert not out.exists()
    out.mkdir()
    result = run_analyze(cli, sd1_folder, out, "--cell-t", "-5")
    one_line_error(result, 1, "timestep -5")
    assert list(out.iterdir()) == []


def test_bad_input_writes_nothing(small_images, sd1_folder, pixel_folder, cli, one_line_error):
    out = small_images / "out"
    result = run_analyze(cli, sd1_folder, out, "--exact", "--size", "160")
    one_line_error(result, 1, "--exact", "25600 entries", "at most 4096")
    result = run_analyze(cli, sd1_folder, out, "--image", small_images / "missing.png")
    one_line_error(result, 1, "missing.png", "no such file")
    result = run_analyze(cli, pixel_folder, out, "--prompt", "a cat")
    one_line_error(result, 2, "unconditional pixel-space model")
    assert not out.exists()
    (small_images / "file").write_text("x")
    result = run_analyze(cli, sd1_folder, small_images / "file")
    one_line_error(result, 1, "is a file, not a folder")


def test_without_matplotlib(tmp_path, sd1_folder, cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    out = tmp_path / "out"
    result = run_analyze(cli, sd1_folder, out)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: layerdecomp analyze needs matplotlib: pip install 'layerdecomp[analyze]'"
    ]
    assert not out.exists()


def test_help_lists_the_subcommand(cli):
    result = cli("analyze", "--help")
    assert result.exit_code == 0 and "jacobian" in result.output


def test_mini_around_an_image_equals_the_package_api(tmp_path, cli):
    """The command's numbers are :func:`layerdecomp.analysis.spectrum_row`'s on the image's latent
    with the same seed (``benchmarks/jacobian_spectrum.py`` calls the same function)."""
    from layerdecomp.analysis import clean_latent, spectrum_row
    from layerdecomp.io import load_image
    from layerdecomp.models import load_model

    image = Image.new("RGB", (64, 64), (200, 120, 40))
    image.paste((30, 60, 220), (16, 16, 48, 48))
    image.save(tmp_path / "in.png")
    out = tmp_path / "out"
    args = ["--image", tmp_path / "in.png", "--prompt", "a square", "--guidance", "1", "--t", "400"]
    result = run_analyze(cli, "mini", out, *args, "--seed", "6")
    assert result.exit_code == 0, result.output
    backend = load_model("mini", device="cpu", dtype="float32")
    latent = clean_latent(backend, load_image(tmp_path / "in.png"))
    denoiser = backend.denoiser("a square", "", 1.0)
    row = spectrum_row(denoiser, latent, 400, krylov=3, probes=2, seed=6)
    (record,) = json.loads((out / "run.json").read_text())["rows"]
    assert record["top"] == row.top
    assert (record["asymmetry"], record["asymmetry_stderr"]) == (
        row.asymmetry,
        row.asymmetry_stderr,
    )
