"""The folder loop with a task that writes text files: skip, redo, refuse, clean up, record."""

from __future__ import annotations

import json

import pytest

from layerdecomp.errors import InputError
from layerdecomp.runs import Item, Ranks, Task, leftovers, read, run_folder


class Recorder:
    """A task: the output of ``x.txt`` is ``out/x.out`` (its text upper-cased) and ``x.json``
    (the marker, written last); ``settings`` plays the command's options."""

    def __init__(self, folder, settings="plain"):
        self.folder, self.settings = folder, settings
        self.worked: list[str] = []
        self.fail: set[str] = set()
        self.bad: set[str] = set()
        self.markers_seen: list[bool] = []

    def fingerprint(self, item, seed):
        return {"text": item.source.read_text(), "style": self.settings, "seed": seed}

    def complete(self, item):
        return item.output.is_file() and item.marker.is_file()

    def validate(self, item):
        if item.source.stem in self.bad:
            raise InputError(f"{item.source.name}: unreadable")

    def work(self, batch, seed):
        for item in batch:
            self.markers_seen.append(item.marker.exists())
            if item.source.stem in self.fail:
                raise InputError(f"{item.source.name}: NaN in the output")
            self.worked.append(item.source.stem)
            item.output.write_text(item.source.read_text().upper())
            marker = {"seed": seed, "fingerprint": item.fingerprint}
            item.marker.write_text(json.dumps(marker))

    def task(self):
        return Task(self.fingerprint, self.complete, self.validate, self.work)

    def items(self, sources):
        out = []
        for src in sorted(sources.iterdir()):
            output = self.folder / f"{src.stem}.out"
            out.append(Item(src, output, output.with_suffix(".json"), {"text": src}))
        return out

    def run(self, sources, seed=5, overwrite=False):
        return run_folder(
            self.task(),
            self.items(sources),
            self.folder,
            seed=seed,
            overwrite=overwrite,
            quiet=True,
            verb="copied",
            ranks=Ranks(),
        )


@pytest.fixture
def sources(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in "abc":
        (folder / f"{name}.txt").write_text(f"text of {name}")
    return folder


def _statuses(folder):
    return [(line["image"].rsplit("/", 1)[1][0], line["status"]) for line in read(folder)]


def test_runs_once_then_skips(sources, tmp_path, capsys):
    task = Recorder(tmp_path / "out")
    outcome = task.run(sources)
    assert task.worked == ["a", "b", "c"] and task.markers_seen == [False] * 3
    assert (outcome.done, outcome.skipped, outcome.failed, outcome.seed) == (3, 0, 0, 5)
    assert (tmp_path / "out" / "b.out").read_text() == "TEXT OF B"
    again = Recorder(tmp_path / "out")
    outcome = again.run(sources)
    assert again.worked == [] and (outcome.done, outcome.skipped) == (0, 3)
    assert "all 3 images already copied" in capsys.readouterr().err
    assert _statuses(tmp_path / "out") == [(n, "done") for n in "abc"] + [
        (n, "skipped") for n in "abc"
    ]
    assert len({line["run"] for line in read(tmp_path / "out")}) == 2


def test_other_settings_are_refused_in_one_line_or_redone(sources, tmp_path):
    Recorder(tmp_path / "out").run(sources)
    (sources / "b.txt").write_text("b, edited")  # another input: b's output is another's too
    other = Recorder(tmp_path / "out", settings="bold")
    with pytest.raises(InputError) as refused:
        other.run(sources)
    message = str(refused.value)
    assert message == (
        f"{tmp_path / 'out' / 'a.out'}: made with style 'plain', not 'bold'; use --overwrite "
        "to redo it (2 more outputs differ too)"
    )
    assert other.worked == [] and len(read(tmp_path / "out")) == 3  # nothing ran, nothing logged
    same = Recorder(tmp_path / "out")
    with pytest.raises(InputError, match="b.out: made with text 'text of b', not 'b, edited'"):
        same.run(sources)
    outcome = other.run(sources, overwrite=True)
    assert other.worked == ["a", "b", "c"] and outcome.done == 3
    assert (tmp_path / "out" / "b.out").read_text() == "B, EDITED"


def test_a_drawn_seed_is_recorded_and_any_recorded_seed_resumes(sources, tmp_path):
    first = Recorder(tmp_path / "out")
    outcome = first.run(sources, seed=None)
    markers = [json.loads((tmp_path / "out" / f"{n}.json").read_text()) for n in "abc"]
    assert {m["seed"] for m in markers} == {outcome.seed}
    assert {m["fingerprint"]["seed"] for m in markers} == {outcome.seed}
    (tmp_path / "out" / "c.json").unlink()
    second = Recorder(tmp_path / "out")
    assert second.run(sources, seed=None).skipped == 2 and second.worked == ["c"]
    given = outcome.seed + 1
    with pytest.raises(InputError, match=f"made with seed {outcome.seed}, not {given}"):
        Recorder(tmp_path / "out").run(sources, seed=given)


def test_a_killed_runs_leftovers_are_cleaned_and_redone(sources, tmp_path):
    out = tmp_path / "out"
    Recorder(out).run(sources)
    (out / "a.json").unlink()  # killed between the two renames: a's output has no marker
    (out / "b.out").unlink()  # a marker without its output is not complete either
    temporaries = [out / ".a.out.k3j_x9aa.tmp", out / ".c.json.0123abcd.tmp"]
    for path in temporaries:
        path.write_text("half")
    (out / ".other.png.0123abcd.tmp").write_text("not ours")  # of no item of this run
    (out / ".a.out.short.tmp").write_text("not the writer's pattern")
    assert leftovers(out) == sorted([*temporaries, out / ".other.png.0123abcd.tmp"])
    task = Recorder(out)
    outcome = task.run(sources)
    assert task.worked == ["a", "b"] and outcome.skipped == 1
    assert task.markers_seen == [False, False]  # b's stale marker went before b was redone
    assert not any(path.exists() for path in temporaries)
    assert (out / ".other.png.0123abcd.tmp").exists() and (out / ".a.out.short.tmp").exists()


def test_failures_are_recorded_and_counted_the_rest_goes_on(sources, tmp_path):
    task = Recorder(tmp_path / "out")
    task.fail = {"b"}
    with pytest.raises(InputError, match=r"^1 of 3 images failed, the others were copied; .*"):
        task.run(sources)
    assert task.worked == ["a", "c"] and not (tmp_path / "out" / "b.json").exists()
    lines = read(tmp_path / "out")
    assert _statuses(tmp_path / "out") == [("a", "done"), ("b", "failed"), ("c", "done")]
    assert lines[1]["message"] == "b.txt: NaN in the output"
    retry = Recorder(tmp_path / "out")
    assert retry.run(sources).done == 1 and retry.worked == ["b"]


def test_a_bad_input_stops_the_run_before_any_work(sources, tmp_path):
    task = Recorder(tmp_path / "out")
    task.bad = {"c"}
    with pytest.raises(InputError, match="c.txt: unreadable"):
        task.run(sources)
    assert task.worked == [] and not (tmp_path / "out").exists()


def test_batches_share_one_work_call(sources, tmp_path):
    task = Recorder(tmp_path / "out")
    calls = []

    def work(batch, seed):
        calls.append([item.source.stem for item in batch])
        task.work(batch, seed)

    job = Task(task.fingerprint, task.complete, task.validate, work, lambda items: [items])
    outcome = run_folder(
        job,
        task.items(sources),
        tmp_path / "out",
        seed=1,
        overwrite=False,
        quiet=True,
        verb="copied",
    )
    assert calls == [["a", "b", "c"]] and outcome.done == 3
    assert _statuses(tmp_path / "out") == [(n, "done") for n in "abc"]
