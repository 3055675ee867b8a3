"""Orders and runs: uploads checked like the command line's files, progress as the run goes."""

from __future__ import annotations

import pytest
from PIL import Image

from layerdecomp.errors import InputError
from layerdecomp.layers import OUTPUTS, WRITERS, DecomposeConfig
from layerdecomp.serve.jobs import Job
from layerdecomp.serve.runner import make_order, read_upload, run_order, safe_filename
from tests.layerdecomp.serve.helpers import bomb_png, disk_png
from tests.layerdecomp.toy_backend import ToyBackend

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("fox.png", "fox.png"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\my photo (1).jpg", "my_photo_1_.jpg"),
        ("", "image"),
        (None, "image"),
        ("...", "image"),
    ],
)
def test_safe_filename(name, safe):
    assert safe_filename(name) == safe


def test_read_upload_decodes_to_rgb_and_leaves_nothing(tmp_path):
    image = read_upload(disk_png(), "disk.png", tmp_path, max_pixels=10**6)
    assert image.mode == "RGB" and image.size == (16, 16)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "image 'a.png': the upload is empty"),
        (b"GIF89a not really", "image 'a.png': "),
        (bomb_png(100_000, 100_000), "image 'a.png': refused as a possible decompression bomb"),
        (bomb_png(300, 300), "image 'a.png': 300x300 pixels is over this server's limit of 100"),
    ],
)
def test_read_upload_refuses_bad_uploads_naming_the_upload(tmp_path, data, fragment):
    with pytest.raises(InputError) as caught:
        read_upload(data, "a.png", tmp_path, max_pixels=100 * 100)
    assert str(caught.value).startswith(fragment)
    assert str(tmp_path) not in str(caught.value)  # the server's paths stay private
    assert list(tmp_path.iterdir()) == []


def test_make_order_checks_prompts_options_and_formats():
    image = Image.new("RGB", (4, 4))
    order = make_order(image, "x.png", ["a"], "b", 5, {"samples": 2}, None)
    assert order.config == DecomposeConfig(samples=2) and order.formats == tuple(WRITERS)
    for fg, bg, options, formats, fragment in [
        ([], "b", {}, None, "fg: give the foreground"),
        (["a"], " ", {}, None, "bg: the prompt is empty"),
        (["a"], "b", {"samples": 0}, None, "samples: expected ≥ 1"),
        (["a"], "b", {"other": 1}, None, "other: not an option"),
        (["a"], "b", {}, ["png", "bmp"], "formats: unknown bmp"),
    ]:
        with pytest.raises(InputError, match=fragment):
            make_order(image, "x.png", fg, bg, 0, options, formats)


def test_run_order_reports_progress_and_writes_the_folder(tmp_path):
    """Progress seen from inside the model's calls: mask updates 0..n, then the final layers."""
    seen = []

    class Watched(ToyBackend):
        def decode(self, latent):  # once per batch of samples: per iteration, and at the end
            seen.append(dict(job.progress))
            return super().decode(latent)

    image = read_upload(disk_png(), "disk.png", tmp_path, max_pixels=10**6)
    options = {"updates": 3, "samples": 2, "iters": 1, "runs": 1, "tol": 0.0}
    order = make_order(image, "disk.png", ["red"], "blue", 7, options, None)
    job = Job("abc", order, tmp_path / "abc")
    run_order(Watched(), job, describe={"spec": "toy"}, extra={"model": "toy"})
    assert [p.get("update") for p in seen if p.get("phase") == "layers"] == [0, 1, 2]
    assert seen[-1]["phase"] == "final" and seen[-1]["update"] == 3
    assert job.progress["phase"] == "done"
    assert job.files == list(OUTPUTS)
    assert sorted(p.name for p in job.folder.iterdir()) == sorted(OUTPUTS)
    assert job.summary["seed"] == 7 and job.summary["updates_run"] == 3


def test_progress_says_what_the_engine_says(tmp_path, monkeypatch):
    """The phase and the most updates come from the engine's callback (``last``, ``updates``),
    not from a copy of its stop test: an engine that stops by a rule of its own is followed."""
    import layerdecomp.tasks.decompose as task

    real, shown = task.decompose_image, []

    def engine(*args, callback, **kwargs):
        def told(info):  # another stop rule: after the second update, of at most 4
            callback({**info, "updates": 4, "last": info["iteration"] == 1})
            shown.append(dict(job.progress))

        return real(*args, callback=told, **kwargs)

    monkeypatch.setattr(task, "decompose_image", engine)
    image = read_upload(disk_png(), "disk.png", tmp_path, max_pixels=10**6)
    options = {"updates": 3, "samples": 2, "iters": 1, "runs": 1, "tol": 0.0}
    order = make_order(image, "disk.png", ["red"], "blue", 7, options, None)
    job = Job("abc", order, tmp_path / "abc")
    run_order(ToyBackend(), job, describe={"spec": "toy"})
    phases = [(p["phase"], p["update"], p["updates"]) for p in shown]
    assert phases == [("layers", 1, 4), ("final", 2, 4), ("layers", 3, 4)]


def test_run_json_is_the_one_run_record(tmp_path):
    """``run.json`` of a served run: the envelope of every run (``run_record``), with the
    server's timings, the model's description and options, and FastAPI's version."""
    import json

    image = read_upload(disk_png(), "disk.png", tmp_path, max_pixels=10**6)
    options = {"updates": 2, "samples": 2, "iters": 1, "runs": 1}
    order = make_order(image, "disk.png", ["red"], "blue", 7, options, None)
    job = Job("abc", order, tmp_path / "abc")
    run_order(ToyBackend(), job, describe={"spec": "toy"}, extra={"model": "toy"})
    meta = json.loads((job.folder / "run.json").read_text())
    assert (meta["command"], meta["image"], meta["output"]) == ("serve", "disk.png", "abc")
    assert meta["model"] == {"spec": "toy"} and meta["parameters"]["model"] == "toy"
    assert meta["parameters"]["updates"] == 2 and meta["seed"] == 7
    assert list(meta["timings"]) == ["queued", "decompose", "image_total"]
    assert meta["timings"] == job.summary["timings"]
    assert "fastapi" in meta["versions"] and "torch" in meta["versions"]
