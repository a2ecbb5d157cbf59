"""`zturbo serve` as a user runs it: a real process on a loopback port; Ctrl-C during a job stops
it promptly, cancels the job and leaves no file behind, half-written or whole."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import httpx
from server_support import wait_for

from zturbo.cli import main


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_and_ctrl_c_cancels_the_running_job(tmp_path):
    port, out = free_port(), tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "zturbo", "serve", "--model", "tiny", "--device", "cpu", "--port", str(port),
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def up():
            try:
                return httpx.get(url + "/api/health", timeout=2).status_code == 200
            except httpx.TransportError:
                assert proc.poll() is None, proc.stdout.read()
                return False

        wait_for(up, 120, "zturbo serve to answer")
        assert httpx.get(url + "/").text.startswith("<!doctype html>")
        job = httpx.post(url + "/api/jobs", json={"prompt": "long", "size": "128x128", "steps": 100}).json()
        events = []

        def listen():  # an open SSE stream must not hold the shutdown up
            with httpx.stream("GET", f"{url}/api/jobs/{job['id']}/events", timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        events.append(line[7:])

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        wait_for(lambda: "step" in events, 60, "the job to start its passes")
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "serving zturbo-tiny" in output and "stopped" in output and f"http://127.0.0.1:{port}/" in output
    t.join(10)
    assert events[-1] == "cancelled"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("history.sqlite")) == []


def test_bad_serve_options_fail_cleanly(capsys, tmp_path):
    assert main(["serve", "--model", "tiny", "--port", "70000"]) == 2
    assert "--port 70000 is outside 1..65535" in capsys.readouterr().err
    assert main(["serve", "--model", "tiny", "--allow-origin", "mybox", "--out", str(tmp_path)]) == 2
    assert "is not an origin like http://host:port" in capsys.readouterr().err


def test_a_busy_port_or_a_bad_output_folder_fails_before_loading(capsys, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--model", "tiny", "--port", str(port), "--out", str(tmp_path)]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    (tmp_path / "history.sqlite").write_bytes(b"not a database, just bytes " * 100)
    assert main(["serve", "--model", "tiny", "--device", "cpu", "--port", str(free_port()), "--out", str(tmp_path)]) == 2
    assert "is not a usable history database" in capsys.readouterr().err


def test_a_bad_allow_origin_fails_before_the_port_check_and_the_load(capsys, tmp_path, monkeypatch):
    import zturbo.cli.common as common

    def no_load(options, quiet=False):
        raise AssertionError("the model was loaded before --allow-origin was checked")

    monkeypatch.setattr(common, "load_engine", no_load)
    with socket.socket() as s:  # the port is busy: the bad option is still the error reported
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert main(["serve", "--model", "tiny", "--port", str(port), "--allow-origin", "mybox",
                     "--out", str(tmp_path)]) == 2
    assert "is not an origin like http://host:port" in capsys.readouterr().err


def test_warm_up_compiles_before_ready_only_when_something_compiles(capsys):
    from zturbo.cli.common import warm_up
    from zturbo.speed import Feature

    calls = []

    class Fake:
        speed = [Feature("compile", True, "regional compile")]

        def generate(self, params):
            calls.append((params.width, params.height, params.guidance))

    assert warm_up(Fake(), [(1024, 1024), (720, 1280)]) is not None
    assert calls == [(1024, 1024, 0.0), (720, 1280, 0.0)]  # guidance > 0 runs through the same compiled blocks
    assert "warming up --fast at 1024x1024, 720x1280:" in capsys.readouterr().err
    Fake.speed = [Feature("compile", False, "no CUDA GPU")]
    calls.clear()
    assert warm_up(Fake(), [(1024, 1024)]) is None and calls == []  # a CPU: nothing to pay


def test_plain_serve_on_a_gpu_warms_up_once_at_the_first_size(capsys):
    import torch

    from zturbo.cli.common import warm_up

    calls = []

    class Fake:
        speed = []
        device = torch.device("cuda")

        def generate(self, params):
            calls.append((params.width, params.height, params.guidance, params.steps))

    assert warm_up(Fake(), [(1024, 1024), (720, 1280)]) is not None
    assert calls == [(1024, 1024, 0.0, 1)]  # nothing compiles: one pass at one size sets the GPU up
    assert "warming up at 1024x1024 (the GPU's first-call set-up)" in capsys.readouterr().err
    calls.clear()
    assert warm_up(Fake(), []) is None and calls == []  # --warm-up none


def test_a_bad_warm_up_size_fails_before_the_load(capsys, tmp_path, monkeypatch):
    import zturbo.cli.common as common

    monkeypatch.setattr(common, "load_engine", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    assert main(["serve", "--model", "tiny", "--port", str(free_port()), "--warm-up", "1000x1000",
                 "--out", str(tmp_path)]) == 2
    assert "--warm-up: width 1000 is not a multiple of 16" in capsys.readouterr().err


def test_a_bad_max_upload_is_refused_before_the_load(capsys, tmp_path):
    assert main(["serve", "--model", "tiny", "--port", str(free_port()), "--max-upload", "0",
                 "--out", str(tmp_path)]) == 2
    assert "--max-upload must be a positive number of MiB, got 0" in capsys.readouterr().err
