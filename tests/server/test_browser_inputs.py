"""The web UI's input image and mask (image-to-image, inpainting) in headless Chromium on the tiny model:
choose or drop a file, it is uploaded and shown with its size, the output takes its size, the recipe names
the upload; bad files and off-grid sizes show the server's one-line error in view; nothing overflows a phone."""

from __future__ import annotations

import hashlib
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from test_browser import browser, inside, open_ui, shot  # noqa: F401  (browser: the module's Chromium fixture)
from test_edits import bomb, mask_png

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


def png(path, width=64, height=48, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG")
    return path


def no_sideways_scroll(page, w):
    return page.evaluate("() => document.documentElement.scrollWidth") <= w


@pytest.mark.parametrize("size", SIZES)
def test_an_input_image_is_uploaded_and_the_output_takes_its_size(browser, live_server, tmp_path, size):
    srv = live_server()
    w, h = SIZES[size]
    page, log = open_ui(browser, srv, viewport=(w, h))
    assert not page.is_visible("#strength") and not page.is_visible("#image-chosen")
    page.fill("#prompt", "a fox from a photo")
    page.fill("#steps", "2")
    path = png(tmp_path / "photo.png")
    page.set_input_files("#image-file", str(path))
    page.wait_for_selector("#image-thumb[src^='blob:']")
    assert "photo.png · 64×48" in page.text_content("#image-info")
    assert page.input_value("#strength") == "0.6" and page.is_visible("#strength-range")
    assert "white = repaint" in page.text_content("#mask-pick")
    assert page.is_disabled("#width") and page.input_value("#width") == "64" and page.input_value("#height") == "48"
    assert "input image's size (64×48)" in page.text_content("#size-note")
    assert no_sideways_scroll(page, w)
    page.fill("#strength", "0.5")
    assert page.input_value("#strength-range") == "0.5"
    shot(page, f"input-image-{size}")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    assert page.text_content("#status") == "done" and "64×48" in page.text_content(".card figcaption")
    item = httpx.get(srv.url + "/api/history").json()["items"][0]
    name = hashlib.sha256(path.read_bytes()).hexdigest() + ".png"
    assert (item["width"], item["height"]) == (64, 48)
    assert item["recipe"]["params"]["image"].endswith(name) and item["recipe"]["params"]["strength"] == 0.5
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    assert name in page.text_content("#viewer-recipe") and "--image" in page.text_content("#viewer-cmd")
    assert no_sideways_scroll(page, w)
    shot(page, f"input-image-viewer-{size}")
    page.click("#viewer [data-close]")
    # remove: back to a typed size and a plain text-to-image job
    page.click("#image-remove")
    assert not page.is_visible("#strength") and page.is_enabled("#width") and page.input_value("#width") == "1024"
    assert no_sideways_scroll(page, w)
    assert [e for e in log.errors] == [] and log.blocked == [] and log.failed == []


BAD_FILES = {
    "not-an-image": (b"hello, not an image", "image upload is not a PNG, JPEG or WebP image"),
    "bomb": (bomb(), "decompression-bomb guard"),
    "too-big": (None, "image upload is over the"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_shows_the_servers_error_in_view(browser, live_server, tmp_path, case):
    data, words = BAD_FILES[case]
    srv = live_server(max_upload=20_000) if data is None else live_server()
    path = tmp_path / "bad.png"
    if data is None:
        png(path, 128, 128)  # ~48 KB of noise: over the 20 KB cap
    else:
        path.write_bytes(data)
    w, h = SIZES["phone"]
    page, log = open_ui(browser, srv, viewport=(w, h))
    page.set_input_files("#image-file", str(path))
    page.wait_for_selector("#message.error")
    text = page.text_content("#message")
    assert text.startswith("bad.png: ") and "\n" not in text
    assert words in text, text
    assert inside(page.locator("#message").bounding_box(), w, h)
    box = page.locator("#message").bounding_box()
    assert box["height"] < 3 * 24  # a line or two on a phone, not a page of text
    assert not page.is_visible("#image-chosen") and not page.is_visible("#strength") and page.is_enabled("#width")
    assert page.is_enabled("#generate") and no_sideways_scroll(page, w)
    shot(page, f"input-bad-{case}")
    assert [e for e in log.errors if "413" not in e and "422" not in e] == []


def test_an_off_grid_image_says_so_then_resize_makes_the_size_shown(browser, live_server, tmp_path):
    srv = live_server()
    page, log = open_ui(browser, srv, viewport=SIZES["phone"])
    page.fill("#prompt", "odd sides")
    page.fill("#steps", "1")
    page.set_input_files("#image-file", str(png(tmp_path / "odd.png", 50, 40)))
    page.wait_for_selector("#image-thumb[src^='blob:']")
    page.click("#generate")
    page.wait_for_selector("#message.error")
    assert "both sides must be multiples of 16" in page.text_content("#message")
    assert "resize=true" in page.text_content("#message")
    page.check("#resize")
    assert (page.input_value("#width"), page.input_value("#height")) == ("48", "32")  # the server's rounding
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    item = httpx.get(srv.url + "/api/history").json()["items"][0]
    assert (item["width"], item["height"]) == (48, 32) and item["recipe"]["params"]["resize"] is True
    assert [e for e in log.errors if "422" not in e] == []


def test_drop_an_image_on_the_form_and_add_a_mask(browser, live_server, tmp_path):
    srv = live_server()
    page, log = open_ui(browser, srv, viewport=SIZES["desktop"])
    page.fill("#prompt", "repaint the right half")
    page.fill("#steps", "2")
    buf = io.BytesIO()
    Image.fromarray(np.full((48, 64, 3), 128, np.uint8)).save(buf, format="PNG")
    data = list(buf.getvalue())
    page.evaluate("""(bytes) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], "dropped.png", {type: "image/png"}));
        const form = document.getElementById("gen-form");
        form.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
        form.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", data)
    page.wait_for_selector("#image-thumb[src^='blob:']")
    assert "dropped.png · 64×48" in page.text_content("#image-info")
    mask = tmp_path / "mask.png"
    mask.write_bytes(mask_png())
    page.set_input_files("#mask-file", str(mask))
    page.wait_for_selector("#mask-chosen:not([hidden])")
    assert "mask.png · 64×48" in page.text_content("#mask-info")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    params = httpx.get(srv.url + "/api/history").json()["items"][0]["recipe"]["params"]
    assert params["mask"].endswith(hashlib.sha256(mask.read_bytes()).hexdigest() + ".png")
    page.click("#mask-remove")
    assert page.is_visible("#mask-file") and page.is_visible("#image-chosen")
    assert log.errors == [] and log.failed == []
