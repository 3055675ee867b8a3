"""``layerdecomp serve``: binds 127.0.0.1 by default, loads the model once, one-line errors."""

from __future__ import annotations

import socket
import sys
import tempfile

import pytest

import layerdecomp.models as models
import layerdecomp.serve as serve_package
from tests.layerdecomp.toy_backend import ToyBackend


@pytest.fixture
def served(monkeypatch):
    """Runs of the command with the toy model, uvicorn replaced: what it would have served."""
    calls = {"load": [], "run": []}

    def load_model(spec, **kwargs):
        calls["load"].append(spec)
        return ToyBackend()

    def run_server(app, sock, *, quiet=False):
        calls["run"].append({"app": app, "address": sock.getsockname(), "quiet": quiet})

    monkeypatch.setattr(models, "load_model", load_model)
    monkeypatch.setattr(serve_package, "run_server", run_server)
    return calls


def test_without_the_extra_one_line_says_what_to_install(cli, one_line_error, monkeypatch, served):
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    result = cli("serve")
    one_line_error(result, 1, "pip install 'layerdecomp[serve]'", "missing: uvicorn")
    assert served["load"] == [] and served["run"] == []


def test_help_shows_the_defaults(cli):
    result = cli("serve", "--help")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for fragment in ("--host TEXT", "[default: 127.0.0.1]", "[default: 7860;", "--model TEXT"):
        assert fragment in text


def test_serves_the_app_on_localhost_with_the_model_loaded_once(cli, served):
    from fastapi.testclient import TestClient

    result = cli("serve", "--port", "0", "--seed", "5", "--max-upload-mb", "0.5", "-q")
    assert result.exit_code == 0, result.output
    assert served["load"] == ["mini"] and len(served["run"]) == 1
    run = served["run"][0]
    host, port = run["address"]
    assert host == "127.0.0.1" and port > 0 and run["quiet"] is True
    assert f"serving http://127.0.0.1:{port}/ (model mini" in result.stderr
    settings = run["app"].state.settings
    assert settings.default_seed == 5 and settings.max_upload_bytes == 2**19
    with TestClient(run["app"]) as client:
        assert client.get("/api/info").json()["defaults"]["seed"] == 5


def test_a_port_in_use_is_one_line_before_the_model_loads(cli, one_line_error, served):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--port", port)
    one_line_error(result, 1, f"cannot listen on 127.0.0.1:{port}")
    assert served["load"] == []


def test_an_unknown_host_is_one_line(cli, one_line_error, served):
    result = cli("serve", "--host", "no-such-host.invalid", "--port", "0")
    one_line_error(result, 1, "--host 'no-such-host.invalid'")


def test_a_bad_model_is_one_line_and_frees_the_port(cli, one_line_error, tmp_path, monkeypatch):
    monkeypatch.setattr(serve_package, "run_server", lambda *a, **k: pytest.fail("served"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = cli("serve", "--port", port, "--model", tmp_path / "missing-model")
    one_line_error(result, 2, "missing-model")
    with socket.socket() as again:  # the command closed its socket
        again.bind(("127.0.0.1", port))


def test_ctrl_c_stops_cleanly(cli, monkeypatch, served, tmp_path):
    def interrupted(app, sock, *, quiet=False):
        raise KeyboardInterrupt  # what uvicorn re-raises after its graceful shutdown

    monkeypatch.setattr(serve_package, "run_server", interrupted)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the app's folder would go
    result = cli("serve", "--port", "0")
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().splitlines()[-1] == "stopped"
    assert list(tmp_path.iterdir()) == []  # no empty layerdecomp-serve-* folder left behind


def test_the_apps_folder_lives_as_long_as_the_app(monkeypatch, tmp_path):
    from fastapi.testclient import TestClient

    from layerdecomp.serve import create_app

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    app = create_app(ToyBackend())
    assert list(tmp_path.iterdir()) == []
    with TestClient(app):
        (folder,) = tmp_path.iterdir()
        assert folder.name.startswith("layerdecomp-serve-") and folder.stat().st_mode & 0o077 == 0
    assert list(tmp_path.iterdir()) == []
