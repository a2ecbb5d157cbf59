"""Image-to-image and inpainting over HTTP: OpenAI's POST /v1/images/edits (multipart) and the native
/api/uploads + /api/jobs. Uploads land in OUT/uploads/<sha256>.<ext>; bad uploads are a 4xx with a
one-line message and nothing is queued."""

from __future__ import annotations

import base64
import hashlib
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zturbo.inputs import recipe_inputs

from server_support import wait_job

W, H = 64, 48
KNOBS = {"prompt": "a red fox", "steps": "2", "seed": "7"}


def png(width=W, height=H, mode="RGB", seed=0, fmt="PNG") -> bytes:
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(out, format=fmt)
    return out.getvalue()


def mask_png(width=W, height=H, alpha=False) -> bytes:
    """The right half marked for repainting: white there (zturbo), or transparent there (OpenAI)."""
    m = np.zeros((height, width), np.uint8)
    m[:, width // 2:] = 255
    im = Image.fromarray(m) if not alpha else Image.fromarray(np.dstack([np.zeros((height, width, 3), np.uint8),
                                                                         255 - m]), "RGBA")
    out = io.BytesIO()
    im.save(out, format="PNG")
    return out.getvalue()


def bomb() -> bytes:
    """A PNG whose header claims 20000x20000 pixels (400 MP) and whose data is a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def edit(client, image=None, mask=None, **fields):
    files = {}
    if image is not None:
        files["image"] = ("photo.png", image, "image/png")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return client.post("/v1/images/edits", data={**KNOBS, **fields}, files=files)


def uploads(client):
    return sorted(p.name for p in (client.app.state.out_dir / "uploads").glob("*"))


def test_edit_round_trip_keeps_the_input_size_and_names_its_sha256(client):
    image = png()
    r = edit(client, image, strength="0.5")
    assert r.status_code == 200, r.text
    out = Image.open(io.BytesIO(base64.b64decode(r.json()["data"][0]["b64_json"])))
    assert out.size == (W, H)
    sha = hashlib.sha256(image).hexdigest()
    stored = client.app.state.out_dir / "uploads" / f"{sha}.png"
    assert stored.read_bytes() == image
    item = client.get("/api/history").json()["items"][0]
    assert item["recipe"]["inputs"]["image"]["sha256"] == sha
    assert item["recipe"]["params"]["strength"] == 0.5
    assert "--image" in item["command"]
    # --from finds the very same input again (the copy beside the PNG, or the stored upload)
    png_path = client.app.state.out_dir / item["name"]
    found = recipe_inputs(item["recipe"], png_path)
    assert hashlib.sha256(open(found["image"], "rb").read()).hexdigest() == sha
    (png_path.parent / item["recipe"]["inputs"]["image"]["file"]).unlink()
    assert recipe_inputs(item["recipe"], png_path) == {"image": str(stored.resolve())}
    # the same bytes again are the same upload, not a second file
    assert edit(client, image, strength="0.5").status_code == 200
    assert uploads(client) == [f"{sha}.png"]


def test_url_response_and_jpeg_input(client):
    image = png(fmt="JPEG")
    r = edit(client, image, response_format="url", n="2")
    assert r.status_code == 200, r.text
    urls = [d["url"] for d in r.json()["data"]]
    assert len(urls) == 2
    assert Image.open(io.BytesIO(client.get(urls[0]).content)).size == (W, H)
    assert uploads(client) == [f"{hashlib.sha256(image).hexdigest()}.jpg"]


@pytest.mark.parametrize("alpha", [False, True], ids=["white-is-repaint", "openai-transparent-is-repaint"])
def test_inpaint_with_a_mask(client, alpha):
    r = edit(client, png(), mask_png(alpha=alpha))
    assert r.status_code == 200, r.text
    recipe = client.get("/api/history").json()["items"][0]["recipe"]
    assert recipe["params"]["mask"] and recipe["inputs"]["mask"]["sha256"]
    stored = client.app.state.out_dir / "uploads" / f"{recipe['inputs']['mask']['sha256']}.png"
    m = np.asarray(Image.open(stored).convert("L"))
    # both conventions end as zturbo's: the right half white (repaint), the left black (keep)
    assert m[:, W // 2:].min() == 255 and m[:, :W // 2].max() == 0
    if not alpha:
        assert stored.read_bytes() == mask_png()  # taken as it is


def test_upload_names_from_the_client_are_never_paths(client, tmp_path):
    image = png(seed=3)
    files = {"image": ("../../escape.png", image, "image/png")}
    r = client.post("/v1/images/edits", data=KNOBS, files=files)
    assert r.status_code == 200, r.text
    assert uploads(client) == [f"{hashlib.sha256(image).hexdigest()}.png"]
    assert not [p for p in tmp_path.rglob("escape*")]


def test_native_api_takes_an_earlier_upload(client):
    image = png(seed=5)
    r = client.post("/api/uploads", files={"file": ("x.webp", image, "image/webp")})
    assert r.status_code == 200, r.text
    name = r.json()["name"]
    assert name == f"{hashlib.sha256(image).hexdigest()}.png"  # named by content, not by the client's ".webp"
    job = client.post("/api/jobs", json={"prompt": "fox", "steps": 2, "image": name, "strength": 0.5})
    assert job.status_code == 202, job.text
    assert job.json()["total"] == 1  # 2 steps at strength 0.5: the first is skipped
    done = wait_job(client, job.json()["id"])
    assert done["state"] == "done", done
    recipe = client.get("/api/history").json()["items"][0]["recipe"]
    assert recipe["inputs"]["image"]["sha256"] == hashlib.sha256(image).hexdigest()


def assert_refused(client, r, words, status=None):
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    if status:
        assert r.status_code == status
    message = r.json()["detail"]
    assert "\n" not in message and words in message, message
    assert ".part" not in message and "/tmp" not in message  # no temp path leaks into a message
    assert client.app.state.jobs.jobs == {}, "a refused request was queued"
    assert client.app.state.history.count() == 0


GIF = io.BytesIO()
Image.new("RGB", (W, H)).save(GIF, format="GIF")

BAD_EDITS = [
    ({"image": b"hello, not an image"}, "image upload is not a PNG, JPEG or WebP image"),
    ({"image": GIF.getvalue()}, "image upload is not a PNG, JPEG or WebP image"),
    ({"image": bomb()}, "decompression-bomb guard"),
    ({"image": png()[:200]}, "image upload"),  # truncated: damaged
    ({"image": b""}, "image upload is empty"),
    ({}, "image is missing"),
    ({"image": png(), "mask": mask_png(32, 32)}, "give a mask of the image's size"),
    ({"image": png(), "mask": b"GIF89a"}, "mask upload is not a PNG, JPEG or WebP image"),
    ({"image": png(), "fields": {"strength": "0"}}, "strength 0 is outside (0, 1]"),
    ({"image": png(), "fields": {"strength": "much"}}, "strength must be a number, got 'much'"),
    ({"image": png(), "fields": {"steps": "2.5"}}, "steps must be a whole number, got '2.5'"),
    ({"image": png(), "fields": {"size": "32x32"}}, "the output takes the input's size"),
    ({"image": png(), "fields": {"response_format": "png"}}, "response_format"),
    ({"image": png(), "fields": {"prompt": None}}, "prompt is missing"),
    ({"image": png(50, 40)}, "both sides must be multiples of 16"),
]


@pytest.mark.parametrize("case,words", BAD_EDITS, ids=[w[:40] for _, w in BAD_EDITS])
def test_bad_edits_are_refused_and_never_queued(client, case, words):
    fields = {k: v for k, v in {**KNOBS, **case.get("fields", {})}.items() if v is not None}
    files = {k: (f"{k}.png", case[k], "image/png") for k in ("image", "mask") if k in case}
    r = client.post("/v1/images/edits", data=fields, files=files)
    assert_refused(client, r, words)
    if "image upload" in words:  # refused by its content: nothing of it is kept
        assert uploads(client) == []


def test_an_upload_over_the_cap_is_413(make_client):
    client = make_client(max_upload=10_000)
    r = edit(client, png(200, 200))  # ~120 KB of noise: over the body cap, refused from Content-Length
    assert_refused(client, r, "request body over", 413)
    assert uploads(client) == []


def test_one_file_over_the_per_file_cap_is_413_and_not_stored(make_client):
    client = make_client(max_upload=20_000)
    assert client.get("/api/health").json()["limits"]["max_upload_bytes"] == 20_000
    big = png(96, 64) + b"\0" * 3_000  # ~21 KB: under the body cap (64 KiB + 20 KB), over the per-file cap
    r = client.post("/api/uploads", files={"file": ("a.png", big, "image/png")})
    assert_refused(client, r, "image upload is over the", 413)
    assert uploads(client) == []


def test_bad_uploads_on_the_native_api(client):
    assert_refused(client, client.post("/api/uploads", files={"file": ("a.png", b"nope", "image/png")}),
                   "image upload is not a PNG")
    assert_refused(client, client.post("/api/uploads", data={"role": "x"}, files={"file": ("a.png", png())}),
                   "role must be image or mask")
    assert_refused(client, client.post("/api/uploads", json={"file": "a.png"}), "file is missing: send a multipart/form-data")
    for name in ("../history.sqlite", "/etc/passwd", "0" * 64 + ".png", 5):
        r = client.post("/api/jobs", json={"prompt": "fox", "image": name})
        assert_refused(client, r, "image" if name != 5 else "name of an upload")
    r = client.post("/api/jobs", json={"prompt": "fox", "strength": 0.5})
    assert_refused(client, r, "strength acts on an input image")


def test_the_api_docs_show_the_upload_forms(client):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. FastAPI's "Duplicate Operation ID": the schema must build cleanly
        paths = client.get("/openapi.json").json()["paths"]
    assert list(paths["/api/health"]) == ["get"]
    for route, file in (("/v1/images/edits", "image"), ("/api/uploads", "file")):
        schema = paths[route]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
        assert schema["properties"][file]["format"] == "binary"
