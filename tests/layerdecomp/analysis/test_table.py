"""The spectrum table: CSV that reads back to the rows' numbers, Markdown with one line per t."""

from __future__ import annotations

import csv
import io

import torch

from layerdecomp.analysis import PUBLISHED, SpectrumRow, published_at, to_csv, to_markdown


def row(t: int, scale: float = 1.0, exact: bool = False) -> SpectrumRow:
    return SpectrumRow(
        t=t,
        top={"jacobian": 3.25 * scale, "symmetric": 4.5 * scale, "skew": 1.125 * scale},
        asymmetry=0.75 * scale,
        asymmetry_stderr=0.0625,
        ritz=torch.tensor([3.25 + 0j, -1.0 + 0.5j]),
        nfe=41,
        backward=12,
        seconds=1.5,
        exact={"jacobian": 3.0, "symmetric": 4.0, "skew": 1.0, "asymmetry": 0.8} if exact else None,
    )


def read(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_reads_back_to_the_rows():
    rows = [row(900), row(450, scale=2.0)]
    records = read(to_csv(rows))
    assert [r["t"] for r in records] == ["900", "450"]
    for record, source in zip(records, rows, strict=True):
        for part, value in source.top.items():
            assert float(record[f"top_{part}"]) == value
        assert float(record["asymmetry"]) == source.asymmetry
        assert float(record["asymmetry_stderr"]) == source.asymmetry_stderr
        assert (record["nfe"], record["backward"]) == ("41", "12")
    assert "seconds" not in records[0] and "exact_jacobian" not in records[0]
    published = [float(records[0][f"published_sd1_{p}"]) for p in ("jacobian", "symmetric", "skew")]
    assert tuple(published) == PUBLISHED[900]
    assert records[1]["published_sd1_jacobian"] == ""  # t = 450 was not measured by the authors


def test_published_values_follow_the_schedule_length():
    assert published_at(700) == PUBLISHED[700]
    assert published_at(350, length=500) == PUBLISHED[700]
    assert published_at(351, length=500) is None and published_at(800) is None
    records = read(to_csv([row(450)], length=500))
    assert float(records[0]["published_sd1_skew"]) == PUBLISHED[900][2]


def test_exact_columns_appear_when_measured():
    records = read(to_csv([row(900, exact=True), row(500)]))
    assert float(records[0]["exact_asymmetry"]) == 0.8
    assert records[1]["exact_asymmetry"] == ""
    table = to_markdown([row(900, exact=True), row(500)])
    assert "dense J" in table and "3.000 / 4.000 / 1.000 / 0.800" in table


def test_markdown_has_one_line_per_timestep():
    table = to_markdown([row(900), row(700), row(123)], title="Jacobian spectrum of m")
    lines = table.splitlines()
    assert lines[0] == "# Jacobian spectrum of m"
    body = [line for line in lines if line.startswith("| ") and line[2].isdigit()]
    assert [line.split(" | ")[0] for line in body] == ["| 900", "| 700", "| 123"]
    assert body[0].split(" | ")[1:5] == ["3.250", "4.500", "1.125", "0.750 ± 0.062"]
    assert body[0].endswith("| 41 / 12 | 16.85 / 16.44 / 2.67 |")
    assert body[2].endswith("| – |")
    header = lines[2].split(" | ")
    assert len(header) == len(body[0].split(" | "))
    assert "dense J" not in table
