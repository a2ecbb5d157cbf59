"""Helpers for the server tests: the tiny engine with test hooks, waiting, and a live uvicorn on
127.0.0.1 with an ephemeral port (in a thread, so tests can see the engine's calls)."""

from __future__ import annotations

import collections
import socket
import threading
import time

from zturbo.errors import GenerationFailed, OutOfMemory
from zturbo.server.runner import make_server

BASE = "http://127.0.0.1:7860"  # TestClient's Host: a loopback name, as a browser on this machine sends
SMALL = {"size": "32x32", "steps": 1}


class HookedEngine:
    """The tiny engine plus what a test needs to hold a job mid-run, make one fail, and count runs."""

    def __init__(self, engine):
        self.engine = engine
        self.info, self.device, self.device_name = engine.info, engine.device, engine.device_name
        self.gate = threading.Event()
        self.gate.set()
        self.in_pass = threading.Event()  # a job has reached the end of a pass (and may be parked there)
        self.runs = collections.Counter()  # (prompt, seed) -> generate() calls
        self._lock = threading.Lock()

    def hold(self):
        self.gate.clear()
        self.in_pass.clear()

    def release(self):
        self.gate.set()

    def generate(self, params, on_step=None, should_cancel=None, **kw):
        with self._lock:
            self.runs[(params.prompt, params.seed)] += 1
        if params.prompt == "boom":
            raise GenerationFailed("generation failed: boom (a test failure)")
        if params.prompt == "oom":
            raise OutOfMemory("out of GPU memory at 32x32: try a smaller size (a test failure)")
        if params.prompt == "bug":
            raise KeyError("an unexpected bug")

        def step(s, total, latents):
            if on_step is not None:
                on_step(s, total, latents)
            self.in_pass.set()
            while not self.gate.is_set() and not (should_cancel and should_cancel()):
                time.sleep(0.01)

        return self.engine.generate(params, on_step=step, should_cancel=should_cancel, **kw)


def wait_for(predicate, timeout=30.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def wait_job(client, job_id, timeout=60.0, **headers):
    return wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}", headers=headers).json())["state"]
                    in ("done", "failed", "cancelled") and j, timeout, f"job {job_id}")


class LiveServer:
    """uvicorn serving the app on 127.0.0.1:<ephemeral port> in a thread."""

    def __init__(self, app):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = app
        self.server = make_server(app, "127.0.0.1", self.port, log_level="warning")
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        wait_for(lambda: self.server.started, 30, "uvicorn to start")
        return self

    def __exit__(self, *exc):
        self.server.stop()
        self.thread.join(30)
        assert not self.thread.is_alive(), "the server did not shut down"


def serving(engine, default_out, before_stop=None):
    """A live-server fixture's body: yields start(out=None, **create_app options) -> a started LiveServer;
    when the test ends, `before_stop` runs (a HookedEngine's release, so a held job ends) and every server stops."""
    from zturbo.server import create_app

    servers = []

    def start(out=None, **options):
        srv = LiveServer(create_app(engine, out or default_out, **options))
        servers.append(srv.__enter__())
        return srv

    yield start
    if before_stop is not None:
        before_stop()
    for s in servers:
        s.__exit__(None, None, None)
