"""Bad input as a user (or an attacker) sends it: every field, odd types, huge and odd values, odd query
strings. Each is a 4xx with a one-line message that names the field, and nothing is ever queued."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from zturbo import GenerationParams, InvalidParams, defaults
from zturbo.params import seed_series
from zturbo.server import create_app

from server_support import BASE, SMALL, HookedEngine, wait_job

MAX_SEED = 2**64 - 1
POSTS = ("/api/jobs", "/v1/images/generations")


@pytest.fixture(scope="module")
def refusing(tiny_engine, tmp_path_factory):
    """One server for all the refusals (nothing they send may ever reach the queue)."""
    engine = HookedEngine(tiny_engine)
    with TestClient(create_app(engine, tmp_path_factory.mktemp("out")), base_url=BASE) as client:
        client.engine = engine
        yield client


def post(client, path, body):
    # json.dumps escapes a lone surrogate as \ud800: valid JSON, as a client would send it
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=raw, headers={"content-type": "application/json"})


def assert_refused(client, r, words):
    """A 4xx whose one-line message holds `words`, and no job: not queued, not run, nothing written."""
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    message = r.json()["detail"]
    assert message == r.json()["error"]["message"] and "\n" not in message
    assert words in message, message
    assert len(message) < 600, message  # not an echo of a 5,000-character value
    assert client.app.state.jobs.jobs == {}, "a refused request was queued"
    assert client.app.state.history.count() == 0


def wrap_message(seed, n):
    with pytest.raises(InvalidParams) as e:
        seed_series(seed, n)
    return str(e.value)


BAD_BODIES = [
    # 1. seeds never wrap past 2^64-1: S..S+N-1 must all be seeds
    ({"seed": str(MAX_SEED), "n": 2}, wrap_message(MAX_SEED, 2)),
    ({"seed": MAX_SEED - 2, "n": 4}, wrap_message(MAX_SEED - 2, 4)),
    # 2. lone surrogates: valid JSON, not text
    ({"prompt": "\ud800"}, "prompt contains an invalid character (lone surrogate U+D800 at position 0)"),
    ({"prompt": "a fox\udfff"}, "lone surrogate U+DFFF at position 5"),
    ({"negative_prompt": "x\udc80"}, "negative_prompt contains an invalid character (lone surrogate U+DC80"),
    # 3. sizes beyond Python's int conversion limit, and sides hundreds of digits long
    ({"size": "1" * 5000 + "x32"}, "size"),
    ({"size": "1" * 5000}, "is not WIDTHxHEIGHT"),
    ({"size": "32x" + "9" * 4400}, "size"),
    ({"width": 16 * 10**400, "height": 16}, "px per side"),
    ({"width": 16 * 10**300, "height": 16 * 10**300}, "px per side"),
    # 5. booleans are not numbers
    ({"seed": True}, "seed must be a whole number, got True"),
    ({"seed": False}, "seed must be a whole number, got False"),
    ({"guidance": True}, "guidance must be a number, got True"),
    ({"steps": True}, "steps must be a whole number, got True"),
    ({"n": True}, "n must be a whole number, got True"),
    ({"width": True, "height": 32}, "width must be a whole number of pixels, got True"),
    ({"width": 32, "height": False}, "height must be a whole number of pixels, got False"),
    # huge, non-finite and fractional numbers
    ({"guidance": 10**400}, "guidance must be a finite number"),
    ({"guidance": "1e999"}, "guidance must be a finite number"),
    ({"guidance": -0.5}, "guidance must be >= 0"),
    ({"guidance": 1e308}, "guidance must be <= 30, got 1e+308"),  # finite, but the guided prediction overflows
    ({"steps": 10**400}, f"is outside 1..{defaults.MAX_STEPS}"),
    ({"steps": 2.5}, "steps must be a whole number, got 2.5"),
    ({"n": 10**400}, "images per request"),
    ({"n": 0}, "n 0 is outside 1..4"),
    ({"n": -1}, "n -1 is outside 1..4"),
    ({"seed": 1.5}, "seed must be a whole number, got 1.5"),
    ({"seed": 7.0}, "seed must be a whole number, got 7.0"),  # floats round above 2^53: never guessed
    ({"seed": 1e300}, "seed must be a whole number"),
    ({"seed": -1}, "seed -1 is outside 0..2^64-1"),
    ({"seed": 10**400}, "is outside 0..2^64-1"),
    ({"seed": "9" * 5000}, "is 5000 characters long"),
    ({"width": -32, "height": 32}, "width must be positive"),
    ({"width": 32.0, "height": 32}, "width must be a whole number of pixels, got 32.0"),
    # wrong types: lists, objects, null, strings where numbers go
    ({"prompt": None}, "prompt must be text"),
    ({"prompt": ["a", "fox"]}, "prompt must be text, got list"),
    ({"prompt": {"text": "a fox"}}, "prompt must be text, got dict"),
    ({"negative_prompt": 5}, "negative prompt must be text"),
    ({"seed": []}, "seed must be a whole number, got []"),
    ({"seed": {"value": 1}}, "seed must be a whole number"),
    ({"seed": "\ud800"}, "is not a whole number"),
    ({"steps": None}, "steps must be a whole number, got None"),
    ({"steps": "8"}, "steps must be a whole number, got '8'"),
    ({"guidance": [1]}, "guidance must be a number, got [1]"),
    ({"guidance": None}, "guidance must be a number, got None"),
    ({"n": "2"}, "n must be a whole number, got '2'"),
    ({"width": None, "height": 32, "size": "32x32"}, "not both"),
    ({"size": 32}, "size"),
    ({"size": ["32", "32"]}, "size"),
    ({"size": ""}, "is not WIDTHxHEIGHT"),
    ({"size": "0x32"}, "width must be positive, got 0"),
    ({"rng": "gpu"}, "rng must be one of cuda, cpu, got 'gpu'"),
    ({"rng": "\ud800"}, "rng"),
]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("body, words", BAD_BODIES, ids=lambda v: repr(v)[:60] if isinstance(v, dict) else "")
def test_bad_fields_are_refused_and_never_queued(refusing, path, body, words):
    base = {"prompt": "a fox", "steps": 1} if "size" in body or "width" in body else {"prompt": "a fox", **SMALL}
    assert_refused(refusing, post(refusing, path, {**base, **body}), words)
    assert sum(refusing.engine.runs.values()) == 0


BAD_RAW = [
    (b'{"prompt": "x", "steps": ' + b"1" * 5000 + b"}", "the body is not valid JSON"),
    (b'{"prompt": "x", "steps": ' + b"[" * 30000 + b"]" * 30000 + b"}", "the body is not valid JSON"),
    (b'{"prompt": "\xff"}', "the body is not valid JSON"),
    (b'{"prompt": "x",}', "the body is not valid JSON"),
    (b"", "the body is empty"),
    (b"[]", "the body must be a JSON object"),
    (b'"a fox"', "the body must be a JSON object"),
    (b"null", "the body must be a JSON object"),
]


@pytest.mark.parametrize("path", POSTS)
@pytest.mark.parametrize("raw, words", BAD_RAW, ids=lambda v: repr(v)[:40] if isinstance(v, bytes) else "")
def test_bodies_that_are_not_a_json_object_are_refused(refusing, path, raw, words):
    assert_refused(refusing, post(refusing, path, raw), words)


@pytest.mark.parametrize("path", POSTS)
def test_a_body_without_the_json_content_type_says_so(refusing, path):
    r = refusing.post(path, content=b'{"prompt": "x"}', headers={"content-type": "text/plain"})
    assert_refused(refusing, r, "Content-Type: application/json")


@pytest.mark.parametrize("field", ["stepz", "aspect", "\ud800"])
def test_the_native_api_refuses_unknown_fields(refusing, field):
    """A typo must not silently give the default: {"stepz": 4} would run 8 passes."""
    r = post(refusing, "/api/jobs", {"prompt": "x", **SMALL, field: 4})
    assert_refused(refusing, r, "unknown field")
    assert "steps" in r.json()["detail"]  # it lists the fields it knows


def test_many_unknown_fields_get_one_short_line(refusing):
    r = post(refusing, "/api/jobs", {"prompt": "x", **{f"field{i}" * 20: i for i in range(400)}})
    assert_refused(refusing, r, "unknown field 'field0field0")
    assert "and 397 more" in r.json()["detail"]


def test_the_openai_endpoint_still_ignores_openai_fields(client):
    """OpenAI's own fields, and null for n and response_format (its schema's "default"), work unchanged."""
    r = post(client, "/v1/images/generations", {"prompt": "x", **SMALL, "quality": "hd", "style": "vivid",
                                                "user": "me", "\ud800": 1, "n": None, "response_format": None})
    assert r.status_code == 200 and len(r.json()["data"]) == 1 and r.json()["data"][0]["b64_json"]


@pytest.mark.parametrize("path", POSTS)
def test_the_last_seeds_below_2_64_are_allowed(client, path):
    r = post(client, path, {"prompt": "edge", "seed": str(MAX_SEED - 1), "n": 2, **SMALL})
    assert r.status_code in (200, 202)
    if path == "/api/jobs":
        job = wait_job(client, r.json()["id"])
        seeds = [i["seed"] for i in job["images"]]
    else:
        seeds = [d["seed"] for d in r.json()["data"]]
    assert seeds == [str(MAX_SEED - 1), str(MAX_SEED)]


def test_direct_submit_refuses_a_wrapping_series(client):
    """The queue itself holds the rule, so no caller can queue a job whose seeds would wrap."""
    with pytest.raises(InvalidParams, match="never wrap"):
        client.app.state.jobs.submit(GenerationParams(prompt="x", seed=MAX_SEED, width=32, height=32), 2)
    assert client.app.state.jobs.jobs == {}


BAD_QUERIES = [
    ("offset=99999999999999999999", "offset"),
    ("offset=9223372036854775808", "9223372036854775807"),
    ("offset=" + "9" * 5000, "offset"),
    ("offset=-1", "offset"),
    ("offset=1.5", "offset"),
    ("offset=abc", "offset"),
    ("offset=", "offset"),
    ("offset=%00", "offset"),
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("limit=99999999999999999999", "limit"),
    ("limit=true", "limit"),
    ("limit=%ff", "limit"),
]


@pytest.mark.parametrize("query, words", BAD_QUERIES)
def test_bad_history_queries_name_the_allowed_range(refusing, query, words):
    r = refusing.get("/api/history?" + query)
    assert_refused(refusing, r, words)
    assert not r.json()["detail"].startswith("query.")


def test_the_largest_history_offset_is_an_empty_page(refusing):
    r = refusing.get("/api/history", params={"offset": 2**63 - 1, "limit": 200})
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["next_offset"] is None


@pytest.mark.parametrize("path", ["/api/jobs/%00", "/api/jobs/%ff/events", "/api/jobs/" + "a" * 5000,
                                  "/api/images/%00.png", "/api/images/%ff.png", "/api/images/..%2f..%2fx.png",
                                  "/api/images/history.sqlite", "/api/nope"])
def test_odd_paths_are_404(refusing, path):
    r = refusing.get(path)
    assert r.status_code == 404 and r.json()["detail"]


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"-1", b"1e3", b" 12"])
def test_a_content_length_that_is_not_ascii_digits_is_400(length):
    """'²'.isdigit() is True but int('²') fails: the security middleware must not 500 on it."""
    import asyncio

    from zturbo.server.security import SecurityMiddleware

    async def app(scope, receive, send):
        raise AssertionError("a bad Content-Length reached the app")

    sent = []

    async def send(message):
        sent.append(message)

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/api/jobs",
             "headers": [(b"host", b"127.0.0.1"), (b"content-length", length)]}
    asyncio.run(SecurityMiddleware(app, token=None, max_body=100)(scope, receive, send))
    assert sent[0]["status"] == 400 and b"Content-Length" in sent[1]["body"]
