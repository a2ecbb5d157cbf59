"""Per-request LoRAs (zturbo serve --lora-dir): GET /api/loras lists the folder, requests name files in it
and nowhere else, each image's recipe records them, and a job without LoRAs keeps the base model's pixels."""

from __future__ import annotations

import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from safetensors.torch import save_file

from zturbo.cli import main
from zturbo.server import create_app

from server_support import BASE, wait_job

sys.path.insert(0, str(Path(__file__).parent.parent / "lora"))
from lora_files import write_lora  # noqa: E402

JOB = {"prompt": "a red fox", "size": "32x32", "steps": 2, "seed": 5, "rng": "cpu"}


@pytest.fixture(scope="module")
def lora_engine():
    """A tiny engine of its own: adapters added here never reach other tests' engine."""
    from zturbo import Engine

    return Engine.load(model="tiny", device="cpu")


@pytest.fixture
def lora_dir(tmp_path):
    d = tmp_path / "loras"
    d.mkdir()
    write_lora(d / "style.safetensors", "diffusers", seed=1, alpha=80.0)
    write_lora(d / "kohya.safetensors", "kohya", seed=2, alpha=80.0)
    (d / "notes.txt").write_text("not a LoRA")
    (d / "old.pt").write_bytes(b"pickle")
    (d / "damaged.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    import torch

    save_file({"transformer.no_such.lora_A.weight": torch.zeros(4, 8),
               "transformer.no_such.lora_B.weight": torch.zeros(8, 4)}, str(d / "other_model.safetensors"))
    (d / "sub").mkdir()
    write_lora(d / "sub" / "nested.safetensors", "diffusers", seed=3)
    write_lora(tmp_path / "outside.safetensors", "diffusers", seed=4)
    (d / "escape.safetensors").symlink_to(tmp_path / "outside.safetensors")
    return d


@pytest.fixture
def serve(lora_engine, tmp_path):
    clients = []

    def make(**options):
        client = TestClient(create_app(lora_engine, tmp_path / "out", **options), base_url=BASE)
        clients.append(client.__enter__())
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pixels(client, name):
    return np.asarray(Image.open(io.BytesIO(client.get(f"/api/images/{name}").content)))


def run_job(client, **body):
    r = client.post("/api/jobs", json={**JOB, **body})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "done", job
    return job["images"][0]["name"]


def test_the_folder_is_listed_with_sizes_and_hashes(serve, lora_dir):
    listing = serve(lora_dir=lora_dir).get("/api/loras").json()
    assert listing["enabled"] is True
    names = [x["name"] for x in listing["loras"]]
    # no .txt, no pickle, no sub-folder, no link leading out of the folder
    assert names == ["damaged.safetensors", "kohya.safetensors", "other_model.safetensors", "style.safetensors"]
    style = listing["loras"][-1]
    data = (lora_dir / "style.safetensors").read_bytes()
    assert style["bytes"] == len(data) and style["sha256"] == hashlib.sha256(data).hexdigest()


def test_without_a_lora_dir_loras_are_refused_with_what_to_do(serve):
    client = serve()
    assert client.get("/api/loras").json()["enabled"] is False
    r = client.post("/api/jobs", json={**JOB, "loras": [{"name": "style.safetensors"}]})
    assert r.status_code == 422 and "start it with --lora-dir" in r.json()["detail"]
    assert not client.app.state.jobs.jobs


@pytest.mark.parametrize("loras, words", [
    ([{"name": "../outside.safetensors"}], "is not a file name"),
    ([{"name": "sub/nested.safetensors"}], "is not a file name"),
    ([{"name": "/etc/passwd.safetensors"}], "is not a file name"),
    ([{"name": "escape.safetensors"}], "leads outside the server's --lora-dir"),
    ([{"name": "old.pt"}], "only .safetensors files are loaded (a pickle can run any code)"),
    ([{"name": "notes.txt"}], "only .safetensors files are loaded"),
    ([{"name": "missing.safetensors"}], "no LoRA 'missing.safetensors' in the server's --lora-dir"),
    ([{"name": "damaged.safetensors"}], "LoRA damaged.safetensors: not a readable .safetensors file"),
    ([{"name": "other_model.safetensors"}], "none of its 2 keys match this Z-Image transformer"),
    ([{"name": "style.safetensors", "scale": "big"}], "scale 'big' is not a number"),
    ([{"name": "style.safetensors"}, {"name": "style.safetensors", "scale": 2}], "is given twice"),
    ([{"file": "style.safetensors"}], "each LoRA is an object with a name"),
    ("style.safetensors", "loras must be a list"),
])
def test_bad_loras_are_a_4xx_and_never_queued(serve, lora_dir, loras, words):
    client = serve(lora_dir=lora_dir)
    r = client.post("/api/jobs", json={**JOB, "loras": loras})
    assert r.status_code == 422 and words in r.json()["detail"], r.text
    assert "\n" not in r.json()["detail"] and str(lora_dir) not in r.json()["detail"]  # no server paths
    assert not client.app.state.jobs.jobs


def test_a_lora_job_records_its_loras_and_leaves_the_base_pixels_alone(serve, lora_dir):
    client = serve(lora_dir=lora_dir)
    before = run_job(client)
    styled = run_job(client, loras=[{"name": "style.safetensors", "scale": 0.7}, {"name": "kohya.safetensors"}])
    after = run_job(client)
    assert (pixels(client, before) == pixels(client, after)).all()  # the base model's pixels, bit for bit
    assert (pixels(client, before) != pixels(client, styled)).any()
    items = {i["name"]: i for i in client.get("/api/history").json()["items"]}
    recipe = items[styled]["recipe"]
    sha = hashlib.sha256((lora_dir / "style.safetensors").read_bytes()).hexdigest()
    assert [(x["name"], x["scale"], x["fused"]) for x in recipe["loras"]] == [
        ("style.safetensors", 0.7, False), ("kohya.safetensors", 1.0, False)]
    assert recipe["loras"][0]["sha256"] == sha
    assert "--lora" in items[styled]["command"] and items[before]["recipe"]["loras"] == []


def test_openai_generations_and_edits_take_loras(serve, lora_dir):
    client = serve(lora_dir=lora_dir)
    r = client.post("/v1/images/generations", json={**JOB, "loras": [{"name": "style.safetensors", "scale": 0.5}]})
    assert r.status_code == 200, r.text
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(buf, format="PNG")
    r = client.post("/v1/images/edits", files={"image": ("in.png", buf.getvalue(), "image/png")},
                    data={"prompt": "a fox", "steps": "2", "seed": "1", "rng": "cpu",
                          "loras": json.dumps([{"name": "kohya.safetensors", "scale": 0.25}])})
    assert r.status_code == 200, r.text
    got = [[(x["name"], x["scale"]) for x in i["recipe"]["loras"]] for i in client.get("/api/history").json()["items"]]
    assert got == [[("kohya.safetensors", 0.25)], [("style.safetensors", 0.5)]]
    for bad in ("style.safetensors", "[" * 5000 + "]" * 5000):
        r = client.post("/v1/images/edits", files={"image": ("in.png", buf.getvalue(), "image/png")},
                        data={"prompt": "a fox", "loras": bad})
        assert r.status_code == 422 and "loras must be JSON text" in r.json()["detail"]


def test_serve_refuses_lora_dir_with_fast_before_loading(capsys, tmp_path, lora_dir, monkeypatch):
    import zturbo.cli.common as common

    monkeypatch.setattr(common, "load_engine", lambda *a, **k: (_ for _ in ()).throw(AssertionError("loaded")))
    assert main(["serve", "--model", "tiny", "--fast", "--lora-dir", str(lora_dir), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "per-request LoRAs (--lora-dir) run as unfused adapters" in err and "drop --fast" in err
    assert main(["serve", "--model", "tiny", "--lora-dir", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert f"--lora-dir {tmp_path / 'nope'}: no such folder" in capsys.readouterr().err


def test_serve_says_what_per_request_loras_cost(capsys, tmp_path, lora_dir, lora_engine, monkeypatch):
    import zturbo.cli.common as common
    import zturbo.server.runner as runner

    class NoServer:
        def run(self):
            pass

    monkeypatch.setattr(common, "load_engine", lambda *a, **k: lora_engine)
    monkeypatch.setattr(runner, "make_server", lambda *a, **k: NoServer())
    assert main(["serve", "--model", "tiny", "--port", str(free_port()), "--lora-dir", str(lora_dir), "--out", str(tmp_path)]) == 0
    assert "per-request LoRAs from" in capsys.readouterr().err


def test_a_fast_engine_refuses_per_request_loras(lora_engine, lora_dir, tmp_path, monkeypatch):  # noqa: F811
    from types import SimpleNamespace

    from zturbo import GenerationParams, LoadOptions
    from zturbo.errors import InvalidParams

    fast = LoadOptions(model="tiny", fast="lossless")
    with pytest.raises(InvalidParams, match="drop --fast / --gguf-mode, or merge fixed LoRAs at load time"):
        create_app(SimpleNamespace(options=fast), tmp_path / "out", lora_dir=lora_dir)
    monkeypatch.setattr(lora_engine, "options", fast)
    params = GenerationParams(prompt="x", width=32, height=32, steps=1, seed=1, rng="cpu")
    with pytest.raises(InvalidParams, match="per-request LoRAs"):
        lora_engine.generate(params, loras=[(str(lora_dir / "style.safetensors"), 1.0)])
