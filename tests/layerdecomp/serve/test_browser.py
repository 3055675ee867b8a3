"""The page in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright)
against ``layerdecomp serve`` on the embedded model, started as a subprocess.

Opt-in (``-m browser``); ``.ci/run`` installs what it needs (``apt-get install chromium``,
``pip install -e '.[browser]'``) and runs it. Playwright's own browser download is not used:
the executable is ``$CHROMIUM`` or ``chromium`` on the PATH. ``LAYERDECOMP_SCREENSHOT=PATH``
also saves the page's screenshot there (``docs/serve.png`` is made that way).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from layerdecomp.layers import OUTPUTS

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[3]
FOX = ROOT / "examples" / "fox_stripes.png"
SMALL = {"updates": "2", "work_side": "64", "samples": "2", "runs": "1"}
"""Settings that keep one decomposition on mini to a few seconds on a CPU."""
START_TIMEOUT = 180


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``layerdecomp serve --port 0`` on mini; yields its base URL; stopped after the module."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "layerdecomp", "serve", "--port", "0"]
    command += ["--max-upload-mb", "1"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not (found := re.search(r"serving (http://\S+/)", log.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"layerdecomp serve did not start:\n{log.read_text()}")
            time.sleep(0.2)
        yield found.group(1).rstrip("/")
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium: Debian's executable, launched by Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright: pip install -e '.[browser]'")
    executable = os.environ.get("CHROMIUM") or shutil.which("chromium")
    if not executable:
        pytest.fail("the browser tests need Chromium: apt-get install chromium (or $CHROMIUM)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    yield context.new_page()
    context.close()


def open_page(page, server: str) -> None:
    """Load the page and wait until it has read the server's settings (``/api/info``): before
    that, ``#model`` is empty and the options' fields (built from it) are not there yet."""
    page.goto(server + "/")
    page.wait_for_selector("#model:not(:empty)")


def fill(page, image: Path, fg: str, bg: str, seed: str, settings: dict[str, str]) -> None:
    page.set_input_files("#image", str(image))
    page.fill(".fg", fg)
    page.fill("#bg", bg)
    page.fill("#seed", seed)
    page.click("details summary")  # samples and runs are under "More options"
    for name, value in settings.items():
        page.fill(option(name), value)


def option(name: str) -> str:
    """The selector of an option's input (the page makes it from ``/api/info``)."""
    return f"#settings [name={name}]"


def finish(page, timeout_s: float = 300) -> str:
    """Wait for the run the page started; its state (``done`` / ``failed``)."""
    page.wait_for_selector("#status[data-state=done], #status[data-state=failed]",
                           timeout=timeout_s * 1000)  # fmt: skip
    return page.get_attribute("#status", "data-state")


def test_a_second_foreground_field_makes_three_layers(server, page):
    open_page(page, server)
    fill(page, FOX, "a fox face", "purple stripes", "0", SMALL)
    page.click("#add-fg")
    page.locator(".fg").nth(1).fill("a red apple")
    page.click("#run")
    assert finish(page) == "done", page.text_content("#status-text")
    ids = page.eval_on_selector_all("#results img", "els => els.map(e => e.id)")
    for name in ("layer1", "layer2", "mask1", "mask2", "background", "recomposed"):
        assert f"result-{name}" in ids, ids
    job = page.get_attribute("#results", "data-job")
    meta = page.request.get(f"{server}/api/jobs/{job}/files/run.json").json()
    assert meta["prompts"] == ["a fox face", "a red apple", "purple stripes"]


def test_the_page_decomposes_an_upload_and_the_zip_downloads(server, page, tmp_path):
    open_page(page, server)
    assert page.text_content("#model") == "Model: mini."
    info = page.request.get(server + "/api/info").json()
    for spec in info["options"]:  # each option's input, its label, default, bounds and help
        label = page.locator(f"#settings label:has([name={spec['name']}])")
        assert spec["label"] in label.text_content()
        field = page.locator(option(spec["name"]))
        assert field.get_attribute("title") == spec["help"]
        if spec["kind"] == "bool":
            assert field.is_checked() == spec["default"]
        elif spec["kind"] == "str":  # the defaults come from the server
            assert page.input_value(option(spec["name"])) == spec["default"]
        elif spec["default"] is not None:
            assert float(page.input_value(option(spec["name"]))) == spec["default"]
        else:
            assert field.get_attribute("placeholder") == spec["placeholder"]
        if spec["kind"] in ("int", "float") and not spec["max_open"]:
            assert float(field.get_attribute("max")) == spec["max"]
        assert page.locator(f"details [name={spec['name']}]").count() == int(spec["more"])
    fill(page, FOX, "a fox face", "purple stripes", "0", SMALL)
    assert page.get_attribute("#preview", "src").startswith("blob:")
    page.click("#run")
    assert finish(page) == "done", page.text_content("#status-text")
    status = page.text_content("#status-text")
    assert re.fullmatch(r"done in [\d.]+ s \(decomposition [\d.]+ s, queued [\d.]+ s; seed 0\)",
                        status), status  # fmt: skip

    job = page.get_attribute("#results", "data-job")
    # an unsure run says so beside its result, as the API's summary does (and nothing otherwise)
    warning = page.request.get(f"{server}/api/jobs/{job}").json()["summary"]["warning"]
    if warning:
        assert page.text_content("#warning") == f"Warning: {warning}." and page.is_visible(
            "#warning"
        )
    else:
        assert not page.is_visible("#warning")
    sizes = page.eval_on_selector_all(
        "#results img", "els => els.map(e => [e.id, e.naturalWidth, e.naturalHeight])"
    )
    shown = {name: (w, h) for name, w, h in sizes}
    for name in ("mask", "foreground", "background", "recomposed"):
        assert shown[f"result-{name}"] == (128, 128), shown  # the input's size
    assert shown["result-sheet"][0] > 4 * 128

    with page.expect_download() as download:
        page.click("#download-zip")
    saved = tmp_path / "layers.zip"
    download.value.save_as(saved)
    assert download.value.suggested_filename == "fox_stripes-layers.zip"
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == sorted(OUTPUTS)
        meta = json.loads(archive.read("run.json"))
        mask = archive.read("mask.png")
    assert (meta["seed"], meta["fg_prompt"], meta["bg_prompt"]) == (
        0,
        "a fox face",
        "purple stripes",
    )
    assert meta["parameters"]["updates"] == 2 and meta["work_size"] == [64, 64]
    displayed = page.get_attribute("#result-mask", "src")
    assert job in displayed and page.request.get(server + displayed).body() == mask

    shot = tmp_path / "serve.png"
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] == 1200
    if os.environ.get("LAYERDECOMP_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["LAYERDECOMP_SCREENSHOT"])


def test_two_browsers_see_their_own_results_and_runs_queue(server, browser):
    contexts = [browser.new_context() for _ in range(2)]
    pages = [context.new_page() for context in contexts]
    try:
        for seed, page in enumerate(pages, 1):
            open_page(page, server)
            fill(page, FOX, "a fox face", "purple stripes", str(seed), SMALL)
        for page in pages:
            page.click("#run")
        assert [finish(page) for page in pages] == ["done", "done"]
        jobs = [page.get_attribute("#results", "data-job") for page in pages]
        assert jobs[0] != jobs[1]
        for seed, (page, job) in enumerate(zip(pages, jobs, strict=True), 1):
            assert page.text_content("#status-text").endswith(f"seed {seed})")
            sources = page.eval_on_selector_all("#results img", "els => els.map(e => e.src)")
            assert sources and all(f"/api/jobs/{job}/" in src for src in sources)
        runs = [httpx.get(f"{server}/api/jobs/{job}").json() for job in jobs]
        first, second = sorted(runs, key=lambda run: run["started"])
        assert first["finished"] <= second["started"]  # one model, one run at a time
    finally:
        for context in contexts:
            context.close()


def test_the_page_shows_a_bad_upload_as_one_line(server, page, tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    open_page(page, server)
    fill(page, notes, "a fox face", "purple stripes", "0", SMALL)
    page.click("#run")
    assert finish(page, 60) == "failed"
    assert page.text_content("#status-text") == (
        "error: image 'notes.png': not an image file Pillow can read"
    )
    assert page.is_hidden("#results")


@pytest.mark.parametrize(("typed", "shown"), [("3", "3"), ("", "5")])
def test_a_value_typed_before_the_settings_arrive_is_kept(server, page, typed, shown):
    """The server's defaults fill only the fields left empty: ``/api/info`` (here with a default
    seed, 5) is held back until a seed has been typed, and the typed value survives it."""
    held = []
    page.route("**/api/info", lambda route: held.append(route))
    page.goto(server + "/")
    page.fill("#seed", typed)
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(50)
    assert held, "the page did not ask for /api/info"
    answer = held[0].fetch()
    info = answer.json()
    info["defaults"]["seed"] = 5
    held[0].fulfill(response=answer, json=info)
    page.wait_for_selector("#model:not(:empty)")
    assert page.input_value("#seed") == shown  # typed: kept; else the server's
    first = info["options"][0]  # left empty, filled from the server
    assert page.input_value(option(first["name"])) == str(first["default"])


def test_the_api_of_the_real_server(server):
    """``POST /api/decompose`` over a socket: the zip, and bad input as a 4xx JSON line."""
    fields = {"fg": "a fox face", "bg": "purple stripes", "seed": "0", **SMALL}
    with httpx.Client(base_url=server, timeout=300) as client:
        response = client.post("/api/decompose", data=fields, files={"image": FOX.open("rb")})
        assert response.status_code == 200 and response.headers["content-type"] == "application/zip"
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            assert sorted(archive.namelist()) == sorted(OUTPUTS)
        response = client.post("/api/decompose", data=fields)
        assert response.status_code == 422 and response.json() == {"error": "image: Field required"}
        big = {"image": ("big.png", b"\0" * (2 * 2**20), "image/png")}  # over --max-upload-mb 1
        response = client.post("/api/decompose", data=fields, files=big)
        assert (
            response.status_code == 413 and "over this server's limit" in response.json()["error"]
        )
