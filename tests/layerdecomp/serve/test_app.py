"""The HTTP API of ``layerdecomp serve`` on the toy model: the zip holds the command line's files,
runs queue, each run is reached by its own id, and bad input is a 4xx with one JSON line."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

import layerdecomp.models as models
from layerdecomp.layers import OUTPUTS, WRITERS, Writer
from solvers import Denoiser
from tests.layerdecomp.serve.helpers import (
    FAST,
    GatedBackend,
    bomb_png,
    disk_png,
    tiny_png,
    upload,
    wait_for,
)
from tests.layerdecomp.toy_backend import ToyBackend

pytestmark = pytest.mark.usefixtures("one_thread")


def unzip(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_zip_holds_the_command_lines_files(client, cli, tmp_path, monkeypatch):
    """Same image, prompts, seed and settings: the same files, the same pixels as the CLI's."""
    response = client.post("/api/decompose", **upload())
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert 'filename="disk-layers.zip"' in response.headers["content-disposition"]
    served = unzip(response.content)
    assert sorted(served) == sorted(OUTPUTS)

    monkeypatch.setattr(models, "load_model", lambda spec, **kwargs: ToyBackend())
    (tmp_path / "disk.png").write_bytes(disk_png())
    options = [x for k, v in FAST.items() for x in (f"--{k.replace('_', '-')}", v)]
    result = cli("decompose", tmp_path / "disk.png", "--fg", "red", "--bg", "blue", "-o",
                 tmp_path / "cli", *options, "-q")  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in OUTPUTS:
        if name.endswith(".png"):
            assert np.array_equal(
                pixels(served[name]), pixels((tmp_path / "cli" / name).read_bytes())
            )
    with zipfile.ZipFile(io.BytesIO(served["layers.ora"])) as ora:
        with zipfile.ZipFile(tmp_path / "cli" / "layers.ora") as expected:
            assert ora.namelist() == expected.namelist()
            for member in ora.namelist():
                assert ora.read(member) == expected.read(member), member
    meta, expected = (
        json.loads(served["run.json"]),
        json.loads((tmp_path / "cli" / "run.json").read_text()),
    )
    assert meta["command"] == "serve" and meta["image"] == "disk.png"
    for key in (
        "seed",
        "fg_prompt",
        "bg_prompt",
        "size",
        "nfe",
        "mask_change",
        "swapped",
        "run",
        "updates_run",
    ):
        assert meta[key] == expected[key], key
    for key in ("updates", "samples", "runs", "iters", "noise_level", "work_side"):
        assert meta["parameters"][key] == expected["parameters"][key], key  # fmt: skip
    # the same options, by the same names, in both records
    from layerdecomp.models.options import ModelOptions
    from layerdecomp.options import option_fields

    placement = {*option_fields(ModelOptions), "threads"}  # how the command line ran it
    assert set(meta["parameters"]) - {"model"} >= set(expected["parameters"]) - placement


def test_a_run_through_the_job_routes(client):
    job = client.post("/api/jobs", **upload(seed="11")).json()
    assert job["state"] in ("queued", "running", "done")
    job = wait_for(client, job["id"])
    assert job["state"] == "done", job
    assert job["files"] == list(OUTPUTS)
    assert job["formats"] == {name: list(w.files) for name, w in WRITERS.items()}
    assert job["summary"]["seed"] == 11 and job["summary"]["size"] == [16, 16]
    assert job["progress"]["phase"] == "done" and job["progress"]["updates"] == 2
    mask = client.get(f"/api/jobs/{job['id']}/files/mask.png")
    assert mask.status_code == 200 and mask.headers["content-type"] == "image/png"
    zipped = unzip(client.get(f"/api/jobs/{job['id']}/zip").content)
    assert zipped["mask.png"] == mask.content
    assert json.loads(zipped["run.json"])["seed"] == 11


def test_runs_queue_one_at_a_time(make_client):
    backend = GatedBackend()
    client = make_client(backend)
    first = client.post("/api/jobs", **upload()).json()
    second = client.post("/api/jobs", **upload()).json()
    assert client.get(f"/api/jobs/{second['id']}").json() | {"progress": {}} == second | {
        "state": "queued",
        "position": 1,
        "progress": {},
    }
    backend.gate.set()
    done = [wait_for(client, job["id"]) for job in (first, second)]
    assert all(job["state"] == "done" for job in done)
    # one at a time, in order: the second started after the first finished
    assert done[0]["finished"] <= done[1]["started"]
    assert done[1]["summary"]["timings"]["queued"] > 0


def test_each_run_is_reached_by_its_own_id_only(client):
    ids = [client.post("/api/jobs", **upload(seed=s)).json()["id"] for s in ("1", "2")]
    jobs = [wait_for(client, i) for i in ids]
    assert ids[0] != ids[1] and len(ids[0]) >= 20
    assert [job["summary"]["seed"] for job in jobs] == [1, 2]
    assert client.get("/api/jobs").status_code == 405  # no listing of other people's runs
    meta = [json.loads(client.get(f"/api/jobs/{i}/files/run.json").content) for i in ids]
    assert [m["seed"] for m in meta] == [1, 2]


def test_a_new_output_format_is_offered_and_zipped(client, monkeypatch):
    """The page and the zip offer whatever WRITERS holds (PSD will join it that way)."""

    def write_txt(path, input_image, images):
        path.write_text(f"{images['mask'].size}\n")

    monkeypatch.setitem(WRITERS, "txt", Writer({"size.txt": write_txt}, "the size"))
    info = client.get("/api/info").json()
    assert info["formats"]["txt"] == {"files": ["size.txt"], "description": "the size"}
    served = unzip(client.post("/api/decompose", **upload()).content)
    assert served["size.txt"] == b"(16, 16)\n"
    only = unzip(client.post("/api/decompose", **upload(formats=["txt", "png"])).content)
    assert sorted(only) == sorted(["size.txt", *WRITERS["png"].files, "run.json"])


def test_three_layers_come_back_with_every_layers_file(client):
    response = client.post("/api/decompose", **upload(fg=["red", "green"]))
    assert response.status_code == 200, response.text
    served = unzip(response.content)
    for name in ("layer1.png", "layer2.png", "mask1.png", "mask2.png", "background.png"):
        assert name in served, sorted(served)
    meta = json.loads(served["run.json"])
    assert meta["prompts"] == ["red", "green", "blue"]
    assert meta["files"]["png"] == [n for n in meta["files"]["png"] if n in served]
    assert {"layers.psd", "layers.ora", "sheet.png"} <= set(served)


def test_the_page_and_its_assets_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for fragment in ('id="image"', 'name="fg"', 'id="bg"', 'id="seed"', 'id="options"'):
        assert fragment in page.text
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    info = client.get("/api/info").json()
    assert info["defaults"]["updates"] == 12 and info["limits"]["max_foregrounds"] == 7


BAD = [
    ("no image", {"files": None}, 422, "image: Field required"),
    ("not an image", {"png": b"hello, not a picture"}, 422, "not an image file Pillow can read"),
    ("empty upload", {"png": b""}, 422, "the upload is empty"),
    ("truncated", {"png": disk_png()[:60]}, 422, "image 'disk.png'"),
    ("empty fg", {"fg": "  "}, 422, "fg: the prompt is empty"),
    ("empty bg", {"bg": ""}, 422, "bg: "),
    ("no bg", {"bg": None}, 422, "bg: Field required"),
    ("eight fg", {"fg": [f"p{i}" for i in range(8)]}, 422, "8 foreground layers given"),
    ("empty second fg", {"fg": ["red", " "]}, 422, "fg: the prompt is empty"),
    ("seed", {"seed": "abc"}, 422, "seed: "),
    ("updates", {"updates": "0"}, 422, "updates: "),
    ("noise", {"noise_level": "1.5"}, 422, "noise_level: "),
    ("work side", {"work_side": "4096"}, 422, "work_side: Input should be less than or equal"),
    ("format", {"formats": "gif"}, 422, "formats: unknown gif"),
    ("1x1 image", {"png": tiny_png(1, 1)}, 422, "1x1 px is too small for decompose"),
]


@pytest.mark.parametrize("case", BAD, ids=[case[0] for case in BAD])
def test_bad_input_is_a_4xx_with_one_json_line(client, case):
    _, fields, status, fragment = case
    request = upload(**{k: v for k, v in fields.items() if k != "files"})
    if "files" in fields:
        request.pop("files")
    response = client.post("/api/decompose", **request)
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and fragment in body["error"], body
    assert "\n" not in body["error"] and "Traceback" not in response.text
    assert client.post("/api/jobs", **request).status_code == status  # the page's route too


def test_a_decompression_bomb_is_refused(client):
    """A header claiming 10¹⁰ pixels: Pillow's bomb check (open_image) refuses it undecoded."""
    response = client.post("/api/decompose", **upload(bomb_png(100_000, 100_000)))
    assert response.status_code == 422
    assert "decompression bomb" in response.json()["error"]
    # under Pillow's limit, over the server's (4096², the default): refused before decoding
    response = client.post("/api/decompose", **upload(bomb_png(5000, 5000)))
    assert response.status_code == 422
    assert "5000x5000 pixels is over this server's limit" in response.json()["error"]


def test_an_upload_over_the_limit_is_refused(make_client):
    client = make_client(max_upload_mb=2000 / 2**20)
    big = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(big).save(buffer, format="PNG")
    response = client.post("/api/decompose", **upload(buffer.getvalue()))
    assert response.status_code == 413
    assert "over this server's limit" in response.json()["error"]
    # the same body sent without a Content-Length (chunked) is cut off as it grows
    request = client.build_request("POST", "/api/decompose", **upload(buffer.getvalue()))
    body, boundary = request.read(), request.headers["content-type"]
    chunks = (body[i : i + 512] for i in range(0, len(body), 512))
    response = client.post("/api/decompose", content=chunks, headers={"content-type": boundary})
    assert response.status_code == 413 and "error" in response.json()
    assert client.post("/api/decompose", **upload()).status_code == 200  # small still works


def test_a_full_queue_answers_503(make_client):
    backend = GatedBackend()
    client = make_client(backend, max_queued=1)
    running = client.post("/api/jobs", **upload()).json()["id"]
    for _ in range(200):  # wait until the worker took the first run
        if client.get(f"/api/jobs/{running}").json()["state"] == "running":
            break
    assert client.post("/api/jobs", **upload()).status_code == 202
    refused = client.post("/api/jobs", **upload())
    assert refused.status_code == 503 and "queue is full" in refused.json()["error"]
    backend.gate.set()
    assert wait_for(client, running)["state"] == "done"


def test_nan_in_a_run_is_a_4xx_and_leaves_no_files(make_client, tmp_path):
    class NanBackend(ToyBackend):
        def denoiser(self, *args, **kwargs):
            inner = super().denoiser(*args, **kwargs)
            return Denoiser(lambda x_t, t: inner(x_t, t) * float("nan"), inner.scheduler, "sample")

    client = make_client(NanBackend())
    response = client.post("/api/decompose", **upload())
    assert response.status_code == 422, response.text
    assert "NaN" in response.json()["error"]
    assert not any((tmp_path / "runs").glob("*/*"))  # nothing written


def test_unknown_runs_and_files_are_404(client):
    assert client.get("/api/jobs/nope").status_code == 404
    job = wait_for(client, client.post("/api/jobs", **upload()).json()["id"])
    for name in ("secret.txt", "..%2Frun.json", ".run.json.tmp"):
        response = client.get(f"/api/jobs/{job['id']}/files/{name}")
        assert response.status_code == 404 and "error" in response.json()
