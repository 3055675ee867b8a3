"""The manifest: one line per image, per-rank shards merged by rank 0, torn lines survived."""

from __future__ import annotations

import json

from layerdecomp.runs import MANIFEST, Manifest, Ranks, merge, read


def test_one_process_appends_to_the_manifest(tmp_path):
    manifest = Manifest(tmp_path, Ranks(), "run1")
    manifest.record("a.png", "out/a", "done", 1.23456)
    manifest.record("b.png", "out/b", "failed", 0.5, "NaN in the output")
    assert manifest.path == tmp_path / MANIFEST
    assert read(tmp_path) == [
        {"run": "run1", "rank": 0, "image": "a.png", "output": "out/a", "status": "done",
         "seconds": 1.2346},
        {"run": "run1", "rank": 0, "image": "b.png", "output": "out/b", "status": "failed",
         "seconds": 0.5, "message": "NaN in the output"},
    ]  # fmt: skip
    assert merge(tmp_path) == 0


def test_rank_shards_are_merged_in_rank_order(tmp_path):
    for rank in (10, 2, 0):
        Manifest(tmp_path, Ranks(rank, 11, 0), "r").record(f"{rank}.png", f"o{rank}", "done", 1)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["manifest.rank0.jsonl", "manifest.rank10.jsonl", "manifest.rank2.jsonl"]
    Manifest(tmp_path, Ranks(), "older").record("x.png", "ox", "skipped", 0)
    assert merge(tmp_path) == 3
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST]
    assert [line["image"] for line in read(tmp_path)] == ["x.png", "0.png", "2.png", "10.png"]
    assert [line["rank"] for line in read(tmp_path)] == [0, 0, 2, 10]


def test_a_torn_line_is_dropped_and_the_next_lines_survive(tmp_path):
    whole = json.dumps({"run": "r", "image": "a.png", "status": "done"})
    (tmp_path / "manifest.rank1.jsonl").write_text(whole + '\n{"run": "r", "ima')
    (tmp_path / MANIFEST).write_text(whole + '\n{"run": "killed", "sta')
    assert merge(tmp_path) == 1
    Manifest(tmp_path, Ranks(), "next").record("b.png", "ob", "done", 2)
    assert [line.get("image") for line in read(tmp_path)] == ["a.png", "a.png", "b.png"]
    assert not (tmp_path / "manifest.rank1.jsonl").exists()
