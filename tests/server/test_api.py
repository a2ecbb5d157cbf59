"""The HTTP API on the tiny model: what a client sees for good and bad requests, progress, cancel,
a full queue, a failing job, and the history across a restart."""

from __future__ import annotations

import base64
import io
import json
import shlex

import pytest
from PIL import Image

from zturbo import GenerationParams, InvalidParams, read_recipe
from zturbo.cli import build_parser
from zturbo.cli.generate import build_params

from server_support import SMALL, wait_for, wait_job


def sse_events(client, job_id):
    """All (event, data) of a job's stream, to its end."""
    out, event = [], None
    with client.stream("GET", f"/api/jobs/{job_id}/events") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, json.loads(line[6:])))
    return out


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def test_health_names_the_model_precision_queue_and_presets(client):
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["model"]["model"] == "tiny" and h["precision"]
    assert h["queue"]["waiting"] == 0 and h["queue"]["bound"] > 0
    assert h["defaults"]["steps"] == 8 and h["presets"]["16:9"]["1"] == [1360, 768]
    assert h["limits"]["max_guidance"] == 30 and h["queue"]["saving"] == 0


def test_health_says_whether_a_controlnet_is_loaded(client, make_client, control_engine):
    h = client.get("/api/health").json()
    assert h["controlnet"] is None and h["defaults"]["control_scale"] == 0.75
    h = make_client(engine_=control_engine).get("/api/health").json()
    assert h["controlnet"]["name"] == "tiny" and h["controlnet"]["variant"] == "tiny"
    assert len(h["controlnet"]["sha256"]) == 64 and "path" not in h["controlnet"]  # no server path is given out


def test_health_answers_head_for_uptime_checks(client):
    r = client.head("/api/health")
    assert r.status_code == 200 and r.content == b""


def test_job_reports_every_pass_with_a_preview_then_the_image(client):
    r = client.post("/api/jobs", json={"prompt": "a red robot", "size": "64x48", "steps": 3, "seed": 7})
    assert r.status_code == 202
    job = r.json()
    events = sse_events(client, job["id"])
    kinds = [e for e, _ in events]
    assert kinds[0] == "state" and kinds[-1] == "done" and "started" in kinds
    steps = [d for e, d in events if e == "step"]
    assert [d["step"] for d in steps] == [1, 2, 3] and steps[-1]["total"] == 3
    assert steps[-1]["preview"].startswith("data:image/jpeg;base64,")
    preview = png(base64.b64decode(steps[-1]["preview"].split(",", 1)[1]))
    assert max(preview.size) <= 96
    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["state"] == "done" and len(done["images"]) == 1
    image = client.get(done["images"][0]["url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    im = png(image.content)
    assert im.size == (64, 48)
    recipe = json.loads(im.text["zturbo"])
    assert recipe["params"]["seed"] == 7 and recipe["passes"] == 3


def test_openai_endpoint_returns_b64_png_and_urls(client):
    r = client.post("/v1/images/generations", json={"prompt": "a fox", "n": 2, "size": "32x32", "steps": 1,
                                                    "seed": 100, "model": "dall-e-3", "quality": "hd"})
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    ims = [png(base64.b64decode(d["b64_json"])) for d in body["data"]]
    assert [im.size for im in ims] == [(32, 32), (32, 32)]
    assert [json.loads(im.text["zturbo"])["params"]["seed"] for im in ims] == [100, 101]
    r = client.post("/v1/images/generations", json={"prompt": "a fox", "response_format": "url", **SMALL})
    url = r.json()["data"][0]["url"]
    assert url.startswith("http://127.0.0.1:7860/api/images/")
    assert client.get(url).status_code == 200


def test_seeds_above_2_53_survive_as_strings(client):
    big = "18446744073709551557"  # JSON numbers would lose the last digits in a browser
    r = client.post("/v1/images/generations", json={"prompt": "x", "seed": big, **SMALL})
    assert r.json()["data"][0]["seed"] == big
    item = client.get("/api/history").json()["items"][0]
    assert item["seed"] == big and f"--seed {big}" in item["command"]


@pytest.mark.parametrize("body, field", [
    ({"prompt": "x", "width": 33, "height": 32}, dict(width=33, height=32)),
    ({"prompt": "x", "steps": 0}, dict(steps=0)),
    ({"prompt": "x", "guidance": -1}, dict(guidance=-1)),
    ({"prompt": "x", "seed": "12abc"}, dict(seed="12abc")),
    ({"prompt": "x", "size": "4096x4096"}, dict(width=4096, height=4096)),
])
def test_bad_knobs_get_the_cli_message(client, body, field):
    with pytest.raises(InvalidParams) as cli_error:
        GenerationParams(prompt="x", **field)
    for path in ("/api/jobs", "/v1/images/generations"):
        r = client.post(path, json=body)
        assert r.status_code == 422
        assert r.json()["detail"] == str(cli_error.value) == r.json()["error"]["message"]
    assert client.get("/api/history").json()["total"] == 0


@pytest.mark.parametrize("body, words", [
    ({"prompt": "x", "n": 5}, "n 5 is outside 1..4"),
    ({"prompt": "x", "size": "big"}, "not WIDTHxHEIGHT"),
    ({"prompt": "x", "size": "32x32", "width": 32}, "not both"),
    ({"steps": 4}, "prompt: Field required"),
    ({"prompt": "x", "response_format": "png"}, "response_format"),
])
def test_malformed_requests_say_what_is_wrong(client, body, words):
    r = client.post("/v1/images/generations", json=body)
    assert r.status_code == 422 and words in r.json()["detail"]


def test_not_json_is_refused(client):
    r = client.post("/api/jobs", content=b"prompt=x", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"] == "the body is not valid JSON (Expecting value at character 0)"


def test_cancel_a_running_job_discards_its_output(client, engine):
    out = client.app.state.out_dir
    engine.hold()
    job = client.post("/api/jobs", json={"prompt": "cancel me", "size": "32x32", "steps": 4}).json()
    wait_for(engine.in_pass.is_set, what="the job to be mid-run")
    assert client.get(f"/api/jobs/{job['id']}").json()["state"] == "running"
    r = client.delete(f"/api/jobs/{job['id']}")
    assert r.status_code == 200 and r.json()["cancel_requested"]
    final = wait_job(client, job["id"])
    assert final["state"] == "cancelled" and final["images"] == [] and final["step"] < 4
    assert list(out.glob("*.png")) == [] and list(out.glob(".*")) == []
    assert client.get("/api/history").json()["total"] == 0
    # cancelling again: it is over
    assert client.delete(f"/api/jobs/{job['id']}").status_code == 409
    # the worker goes on with the next job
    engine.release()
    nxt = client.post("/api/jobs", json={"prompt": "next", **SMALL}).json()
    assert wait_job(client, nxt["id"])["state"] == "done"


def test_cancel_a_queued_job_means_it_never_runs(client, engine):
    engine.hold()
    first = client.post("/api/jobs", json={"prompt": "first", **SMALL}).json()
    wait_for(engine.in_pass.is_set, what="the first job to run")
    queued = client.post("/api/jobs", json={"prompt": "queued", "seed": 5, **SMALL}).json()
    assert client.get(f"/api/jobs/{queued['id']}").json()["state"] == "queued"
    assert client.delete(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"
    engine.release()
    assert wait_job(client, first["id"])["state"] == "done"
    assert engine.runs[("queued", 5)] == 0
    assert client.get(f"/api/jobs/{queued['id']}").json()["state"] == "cancelled"


def test_a_full_queue_answers_503_with_retry_after(make_client, engine):
    client = make_client(queue_bound=2)
    engine.hold()
    running = client.post("/api/jobs", json={"prompt": "running", **SMALL}).json()
    wait_for(engine.in_pass.is_set, what="a running job")
    waiting = [client.post("/api/jobs", json={"prompt": f"w{i}", **SMALL}) for i in range(2)]
    assert [r.status_code for r in waiting] == [202, 202]
    for path in ("/api/jobs", "/v1/images/generations"):
        r = client.post(path, json={"prompt": "one too many", **SMALL})
        assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0 and "queue is full" in r.json()["detail"]
    assert client.get("/api/health").json()["queue"]["waiting"] == 2
    engine.release()
    for j in [running, *(r.json() for r in waiting)]:
        assert wait_job(client, j["id"])["state"] == "done"
    assert client.post("/api/jobs", json={"prompt": "room again", **SMALL}).status_code == 202


@pytest.mark.parametrize("prompt, kind", [("boom", "generation_failed"), ("oom", "out_of_memory"),
                                          ("bug", "server_error")])
def test_a_failing_job_fails_alone(client, prompt, kind):
    bad = client.post("/api/jobs", json={"prompt": prompt, **SMALL}).json()
    good = client.post("/api/jobs", json={"prompt": "fine", **SMALL}).json()
    failed = wait_job(client, bad["id"])
    assert failed["state"] == "failed" and failed["error_type"] == kind and failed["error"]
    assert wait_job(client, good["id"])["state"] == "done"
    r = client.post("/v1/images/generations", json={"prompt": prompt, **SMALL})
    assert r.status_code == 500 and r.json()["error"]["type"] == kind
    h = client.get("/api/health").json()
    assert h["status"] == "ok" and h["queue"]["failed"] == 2 and h["queue"]["completed"] == 1


def test_unknown_job_is_404(client):
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.delete("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/nope/events").status_code == 404


def test_history_pages_and_survives_a_restart(make_client, tmp_path):
    out = tmp_path / "kept"
    first = make_client(out=out)
    r = first.post("/v1/images/generations", json={"prompt": "keep me", "n": 3, "seed": 1, **SMALL})
    assert r.status_code == 200
    first.__exit__(None, None, None)  # stop the server

    again = make_client(out=out)
    page = again.get("/api/history", params={"limit": 2}).json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_offset"] == 2
    assert [i["seed"] for i in page["items"]] == ["3", "2"]  # newest first
    rest = again.get("/api/history", params={"offset": 2, "limit": 2}).json()
    assert [i["seed"] for i in rest["items"]] == ["1"] and rest["next_offset"] is None
    item = rest["items"][0]
    assert item["recipe"]["params"]["prompt"] == "keep me" and item["recipe"]["passes"] == 1
    assert again.get(item["url"]).status_code == 200
    assert again.get("/api/history", params={"limit": 0}).status_code == 422


def test_the_copied_cli_command_reproduces_the_recipe(client):
    client.post("/v1/images/generations", json={"prompt": "it's a \"quoted\" fox", "seed": 9, "guidance": 0.5,
                                                "negative_prompt": "blur", **SMALL})
    item = client.get("/api/history").json()["items"][0]
    argv = shlex.split(item["command"])
    assert argv[:2] == ["zturbo", "generate"]
    args = build_parser().parse_args(argv[1:])
    params, model = build_params(args)
    recorded = read_recipe(client.app.state.out_dir / item["name"])["params"]
    assert params.to_dict() == {**recorded, "max_megapixels": params.max_megapixels}
    assert model["model"] == "tiny"


def test_the_copied_cli_command_of_a_controlnet_image_names_the_controlnet_and_control_image(make_client,
                                                                                              control_engine):
    client = make_client(engine_=control_engine)
    edges = io.BytesIO()
    Image.new("RGB", (32, 48), "white").save(edges, "PNG")
    up = client.post("/api/uploads", data={"role": "control"}, files={"file": ("e.png", edges.getvalue())}).json()
    job = client.post("/api/jobs", json={"prompt": "a fox", "steps": 1, "control_image": up["name"],
                                         "control_scale": 1.25, "control_type": "canny"}).json()
    assert wait_job(client, job["id"])["state"] == "done"
    item = client.get("/api/history").json()["items"][0]
    argv = shlex.split(item["command"])
    assert argv[argv.index("--controlnet") + 1] == "tiny" and argv[argv.index("--control") + 1].endswith(up["name"])
    params, model = build_params(build_parser().parse_args(argv[1:]))
    recorded = read_recipe(client.app.state.out_dir / item["name"])["params"]
    assert params.to_dict() == {**recorded, "max_megapixels": params.max_megapixels}
    assert (params.control_scale, params.control_type) == (1.25, "canny")


def test_shutdown_cancels_the_running_job_and_leaves_no_partial_file(make_client, engine):
    client = make_client()
    out = client.app.state.out_dir
    engine.hold()
    job = client.app.state.jobs.submit(GenerationParams(prompt="interrupted", width=32, height=32, steps=3), 1)
    queued = client.app.state.jobs.submit(GenerationParams(prompt="never", width=32, height=32, steps=1), 1)
    wait_for(engine.in_pass.is_set, what="the job to run")
    client.__exit__(None, None, None)  # the app's shutdown: engine still held, so only a cancel ends the job
    assert job.state == "cancelled" and queued.state == "cancelled"
    assert not client.app.state.jobs._thread.is_alive()
    assert [p.name for p in out.iterdir() if not p.name.startswith("history.sqlite")] == []


def test_notes_and_warnings_reach_the_client(client):
    r = client.post("/v1/images/generations", json={"prompt": "x", "guidance": 1.5, **SMALL})
    assert r.status_code == 200 and any("doubles the cost" in w for w in r.json()["warnings"])
    job = client.post("/api/jobs", json={"prompt": "x", "negative_prompt": "blur", **SMALL}).json()
    assert any("negative prompt only acts" in w for w in wait_job(client, job["id"])["warnings"])


def test_the_copied_command_of_a_large_image_raises_the_pixel_cap():
    """The server's command line and the report's are one builder: above the 4 MP default cap it passes
    --max-megapixels, or the copied command would be refused."""
    from zturbo.server.app import cli_command

    recipe = {"params": {"prompt": "big", "seed": 1, "steps": 8, "guidance": 0.0, "width": 2304, "height": 2048,
                         "max_megapixels": 5.0, "rng": "cuda"}, "model": {"model": "tiny", "quant": "bf16"}}
    args = build_parser().parse_args(shlex.split(cli_command(recipe))[1:])
    params, model = build_params(args)
    assert (params.width, params.height, params.max_megapixels) == (2304, 2048, 5.0) and model["model"] == "tiny"
