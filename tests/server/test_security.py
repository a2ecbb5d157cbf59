"""Secure by default: foreign Host/Origin -> 403, traversal -> 404, tokens -> 401, bodies capped,
CORS closed unless an origin is allowed, and a loud warning when exposed without a token."""

from __future__ import annotations

import os

import pytest
from server_support import SMALL

from zturbo.cli.serve import warnings_for


def make_image(client):
    r = client.post("/v1/images/generations", json={"prompt": "secret", "response_format": "url", **SMALL})
    return r.json()["data"][0]["url"].rsplit("/", 1)[1]


@pytest.mark.parametrize("host", ["evil.example", "evil.example:7860", "127.0.0.1.evil.example", "192.168.1.20:7860", ""])
def test_foreign_host_is_403(client, host):
    # DNS rebinding: a page on evil.example re-pointed at 127.0.0.1 still sends Host: evil.example
    for method, path in (("GET", "/api/health"), ("GET", "/"), ("POST", "/api/jobs")):
        r = client.request(method, path, headers={"host": host}, json={"prompt": "x", **SMALL})
        assert r.status_code == 403 and "host" in r.json()["detail"]


@pytest.mark.parametrize("host", ["localhost:7860", "127.0.0.1", "[::1]:7860", "127.0.0.2:7860"])
def test_loopback_hosts_are_served(client, host):
    assert client.get("/api/health", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:9999", "https://127.0.0.1:7860", "null",
                                    "file://"])
def test_foreign_origin_is_403(client, origin):
    # a web page elsewhere (or a sandboxed frame) cannot post jobs or read history
    r = client.post("/api/jobs", json={"prompt": "csrf", **SMALL}, headers={"origin": origin})
    assert r.status_code == 403 and "origin" in r.json()["detail"]
    assert client.get("/api/history", headers={"origin": origin}).status_code == 403
    assert client.get("/api/history").json()["total"] == 0


def test_same_origin_is_allowed_and_cors_is_closed(client):
    r = client.post("/api/jobs", json={"prompt": "ok", **SMALL}, headers={"origin": "http://127.0.0.1:7860"})
    assert r.status_code == 202
    r = client.get("/api/health", headers={"origin": "http://127.0.0.1:7860"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/api/jobs", headers={"origin": "http://evil.example", "access-control-request-method": "POST"})
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers


def test_allow_origin_opens_cors_for_that_origin_only(make_client):
    client = make_client(allow_origins=["http://mybox.lan:8080/"])
    pre = client.options("/api/jobs", headers={"origin": "http://mybox.lan:8080", "access-control-request-method": "POST",
                                               "access-control-request-headers": "content-type"})
    assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://mybox.lan:8080"
    r = client.get("/api/health", headers={"origin": "http://mybox.lan:8080", "host": "mybox.lan:7860"})
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://mybox.lan:8080"
    assert client.get("/api/health", headers={"origin": "http://other.lan:8080"}).status_code == 403


def test_bound_address_is_an_allowed_host(make_client):
    client = make_client(bound_host="192.168.1.20", token="t")
    assert client.get("/api/health", headers={"host": "192.168.1.20:7860", "authorization": "Bearer t"}).status_code == 200
    assert client.get("/api/health", headers={"host": "192.168.1.21:7860", "authorization": "Bearer t"}).status_code == 403


@pytest.mark.parametrize("path", [
    "/api/images/..%2Fsecret.png",
    "/api/images/%2e%2e%2fsecret.png",
    "/api/images/..%5Csecret.png",
    "/api/images/%2Fetc%2Fpasswd",
    "/api/images/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/api/images/../secret.png",
    "/api/images/link.png",
    "/api/images/history.sqlite",
    "/api/images/.hidden.png",
    "/api/images/nope.png",
    "/api/images/%00.png",
])
def test_paths_outside_the_output_folder_are_404(client, tmp_path, path):
    out = client.app.state.out_dir
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret outside the output folder")
    (out / "link.png").symlink_to(secret)
    (out / ".hidden.png").write_bytes(b"\x89PNG hidden")
    r = client.get(path)
    assert r.status_code == 404 and b"secret" not in r.content


def test_absolute_path_in_name_is_404(client, tmp_path):
    secret = tmp_path / "abs.png"
    secret.write_bytes(b"\x89PNG secret")
    r = client.get("/api/images/" + str(secret).replace("/", "%2F"))
    assert r.status_code == 404


def test_a_real_image_is_served(client):
    name = make_image(client)
    assert client.get(f"/api/images/{name}").content.startswith(b"\x89PNG")


def test_token_required_on_every_api_call(make_client):
    client = make_client(token="s3cret")
    calls = [("GET", "/api/health"), ("GET", "/api/history"), ("POST", "/api/jobs"), ("GET", "/api/jobs/x"),
             ("DELETE", "/api/jobs/x"), ("GET", "/api/images/x.png"), ("POST", "/v1/images/generations"),
             ("GET", "/v1/models"), ("GET", "/openapi.json")]
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"},
                    {"authorization": "s3cret"}, {"authorization": "Bearer "}):
        for method, path in calls:
            r = client.request(method, path, headers=headers, json={"prompt": "x", **SMALL})
            assert r.status_code == 401, (method, path, headers)
            assert r.headers["www-authenticate"] == "Bearer"
    ok = {"authorization": "Bearer s3cret"}
    assert client.get("/api/health", headers=ok).status_code == 200
    r = client.post("/v1/images/generations", json={"prompt": "x", **SMALL}, headers=ok)
    assert r.status_code == 200
    # the UI page holds no data: it loads, then asks for the token
    assert client.get("/").status_code == 200 and client.get("/static/app.js").status_code == 200
    assert client.get("/api/history", headers=ok).json()["total"] == 1


def test_body_size_is_capped(make_client):
    client = make_client(max_body=1024)
    r = client.post("/api/jobs", json={"prompt": "x" * 2000, **SMALL})
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted while read
        yield b'{"prompt": "'
        for _ in range(20):
            yield b"y" * 100
        yield b'"}'

    r = client.post("/api/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.get("/api/history").json()["total"] == 0


def test_responses_forbid_framing_and_sniffing(client):
    r = client.get("/")
    assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_exposed_without_token_warns_loudly():
    assert warnings_for("127.0.0.1", None) == [] and warnings_for("::1", None) == []
    assert warnings_for("0.0.0.0", "t", ["http://box:7860"]) == []
    text = "\n".join(warnings_for("192.168.1.20", None))
    assert "WARNING" in text and "--token" in text
    assert "--allow-origin" in "\n".join(warnings_for("0.0.0.0", "t"))


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_symlinked_output_folder_still_serves_its_own_images(make_client, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)
    client = make_client(out=tmp_path / "alias")
    name = make_image(client)
    assert client.get(f"/api/images/{name}").status_code == 200
