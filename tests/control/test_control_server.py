"""ControlNet over HTTP: serve --controlnet's engine takes control_image (an upload's name, role 'control') and
control_scale on /api/jobs; a job without the control image, or one for a server without a ControlNet, is a 422 (the server's status for bad input)."""

import hashlib
import io
import sys
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent.parent / "server"))

from server_support import BASE, wait_job  # noqa: E402

from zturbo.metadata import read_recipe  # noqa: E402
from zturbo.server import create_app  # noqa: E402


def png(seed=0, width=64, height=48) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def serve(tmp_path):
    clients = []

    def make(engine):
        client = TestClient(create_app(engine, tmp_path / "out"), base_url=BASE)
        clients.append(client.__enter__())
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def upload(client, data, role="control"):
    r = client.post("/api/uploads", data={"role": role}, files={"file": ("c.png", data, "image/png")})
    assert r.status_code == 200, r.text
    return r.json()["name"]


def test_a_job_with_a_control_image(serve, control_engine, tmp_path):
    client = serve(control_engine)
    data = png()
    name = upload(client, data)
    r = client.post("/api/jobs", json={"prompt": "a fox", "steps": 2, "seed": 3, "rng": "cpu",
                                       "control_image": name, "control_scale": 1.2, "control_type": "canny"})
    assert r.status_code == 202, r.text
    job = wait_job(client, r.json()["id"])
    assert job["state"] == "done", job
    out = next(p for p in (tmp_path / "out").glob("*.png") if ".control." not in p.name)
    assert out.with_name(out.stem + ".control.png").read_bytes() == data  # the upload, copied beside it
    recipe = read_recipe(out)
    assert recipe["inputs"]["control"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert recipe["params"]["control_scale"] == 1.2 and recipe["controlnet"]["variant"] == "tiny"


@pytest.mark.parametrize("body,msg", [
    ({}, "no control image was given"),
    ({"control_scale": 0.5}, "control scale acts on a control image"),
    ({"control_image": "CONTROL", "control_scale": 9}, "control scale 9 is outside"),
    ({"control_image": "nope.png"}, "control_image must be the name of an upload"),
])
def test_bad_control_requests_are_422(serve, control_engine, body, msg):
    client = serve(control_engine)
    if body.get("control_image") == "CONTROL":
        body["control_image"] = upload(client, png())
    r = client.post("/api/jobs", json={"prompt": "x", "rng": "cpu", "width": 64, "height": 64, **body})
    assert r.status_code == 422 and msg in r.json()["error"]["message"], r.text
    queue = client.get("/api/health").json()["queue"]
    assert queue["waiting"] == 0 and queue["running"] is None and queue["completed"] == queue["failed"] == 0


def test_a_control_image_on_a_server_without_a_controlnet_is_422(serve, tiny_engine):
    client = serve(tiny_engine)
    r = client.post("/api/jobs", json={"prompt": "x", "rng": "cpu", "control_image": upload(client, png())})
    assert r.status_code == 422 and "needs a ControlNet" in r.json()["error"]["message"], r.text
