"""Fixtures of the server tests: an app around the toy model, and its HTTP client."""

from __future__ import annotations

import pytest

from tests.layerdecomp.toy_backend import ToyBackend


@pytest.fixture
def make_client(tmp_path):
    """``make_client(backend=None, **settings)``: a TestClient of a fresh app (closed after)."""
    from fastapi.testclient import TestClient

    from layerdecomp.serve import Settings, create_app

    clients = []

    def make(backend=None, **settings):
        app = create_app(
            backend or ToyBackend(), settings=Settings(**settings), root=tmp_path / "runs"
        )
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()
