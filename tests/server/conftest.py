"""Server fixtures: an app on a temp output folder (TestClient), or a live uvicorn."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from server_support import BASE, HookedEngine, serving

from zturbo.server import create_app


@pytest.fixture
def engine(tiny_engine):
    return HookedEngine(tiny_engine)


@pytest.fixture
def make_client(engine, tmp_path):
    """make_client(**create_app options) -> a started TestClient; all are closed at the end."""
    clients = []

    def make(out=None, engine_=None, **options):
        app = create_app(engine_ or engine, out or tmp_path / "out", **options)
        client = TestClient(app, base_url=BASE)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    engine.release()
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def live_server(engine, tmp_path):
    """live_server(**create_app options) -> a started LiveServer (stopped at the end)."""
    yield from serving(engine, tmp_path / "out", before_stop=engine.release)
