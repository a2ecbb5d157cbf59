"""The web UI's ControlNet controls (serve --controlnet) in headless Chromium on the tiny model with the tiny
ControlNet: without one nothing of it is shown; with one, Generate waits for a control image, which is uploaded
when chosen (or dropped on the ControlNet box) and sets the size; its scale and canny type reach the recipe, the
viewer lists them, "use these settings" brings them back; a bad file shows the server's one-line error."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from server_support import serving, wait_job
from test_browser import browser, open_ui, shot  # noqa: F401  (browser: the module's Chromium fixture)
from test_browser_inputs import SIZES, no_sideways_scroll, png
from test_browser_lora_mask import history, small_targets


@pytest.fixture
def control_server(control_engine, tmp_path):
    yield from serving(control_engine, tmp_path / "out")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_without_a_controlnet_there_are_no_control_controls(browser, live_server):
    srv = live_server()
    page, log = open_ui(browser, srv, viewport=SIZES["phone"])
    assert page.locator("#control").count() == 1  # in the page, hidden: this server has no ControlNet
    assert not page.is_visible("#control") and not page.is_visible("#control-file")
    assert not page.is_visible("#image-control-hint")
    assert not page.is_visible("#generate-note") and page.is_enabled("#generate")
    assert log.errors == [] and log.failed == []


@pytest.mark.parametrize("size", SIZES)
def test_choose_a_control_image_and_generate(browser, control_server, tmp_path, size):
    srv = control_server()
    w, h = SIZES[size]
    page, log = open_ui(browser, srv, viewport=(w, h))
    assert page.is_visible("#control-file") and "tiny (tiny)" in page.text_content("#control legend")
    # such a server refuses a job without a control image: Generate waits for one, and says why
    assert page.is_disabled("#generate") and "Choose a control image first" in page.text_content("#generate-note")
    assert page.input_value("#control-scale") == "0.75" and page.input_value("#control-scale-range") == "0.75"
    assert not page.is_checked("#control-canny")
    page.fill("#prompt", "a fox along the edges")
    page.fill("#steps", "2")
    edges = png(tmp_path / "edges.png", 64, 48, seed=3)
    page.set_input_files("#control-file", str(edges))
    page.wait_for_selector("#control-thumb[src^='blob:']")
    assert "edges.png · 64×48" in page.text_content("#control-info")
    assert page.is_enabled("#generate") and not page.is_visible("#generate-note")
    assert page.is_disabled("#width") and (page.input_value("#width"), page.input_value("#height")) == ("64", "48")
    assert "control image's size (64×48)" in page.text_content("#size-note")
    page.fill("#control-scale", "1.2")
    assert page.input_value("#control-scale-range") == "1.2"
    page.check("#control-canny")
    assert no_sideways_scroll(page, w) and small_targets(page, "#control") == []
    shot(page, f"control-{size}")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    item = history(srv)[0]
    recipe = item["recipe"]
    assert (item["width"], item["height"]) == (64, 48)
    assert recipe["inputs"]["control"]["sha256"] == sha(edges)
    assert recipe["params"]["control_scale"] == 1.2 and recipe["params"]["control_type"] == "canny"
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    text = page.text_content("#viewer-recipe")
    assert "tiny (tiny)" in text and sha(edges) + ".png" in text and "canny edges" in text and "1.2" in text
    assert no_sideways_scroll(page, w)
    shot(page, f"control-viewer-{size}")
    page.click("#viewer [data-close]")
    page.click("#control-remove")  # back to a typed size, and Generate waits again
    assert page.is_enabled("#width") and page.input_value("#width") == "1024" and page.is_disabled("#generate")
    assert log.errors == [] and log.failed == []


def test_a_bad_control_file_shows_the_servers_error(browser, control_server, tmp_path):
    srv = control_server()
    w, h = SIZES["phone"]
    page, log = open_ui(browser, srv, viewport=(w, h))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"hello, not an image")
    page.set_input_files("#control-file", str(bad))
    page.wait_for_selector("#message.error")
    text = page.text_content("#message")
    assert text.startswith("bad.png: control upload is not a PNG, JPEG or WebP image") and "\n" not in text, text
    assert not page.is_visible("#control-chosen") and page.is_visible("#control-file")
    assert page.is_disabled("#generate") and page.is_visible("#generate-note") and no_sideways_scroll(page, w)
    assert [e for e in log.errors if "422" not in e] == []


def drop(page, selector, path):
    page.evaluate("""([selector, bytes, name]) => {
        const dt = new DataTransfer();
        dt.items.add(new File([new Uint8Array(bytes)], name, {type: "image/png"}));
        const box = document.querySelector(selector);
        box.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
        box.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
    }""", [selector, list(path.read_bytes()), path.name])


def test_drop_a_control_image_then_use_these_settings_brings_it_back(browser, control_server, tmp_path):
    srv = control_server()
    w, h = SIZES["desktop"]
    page, log = open_ui(browser, srv, viewport=(w, h))
    page.fill("#prompt", "a house along the edges")
    page.fill("#steps", "1")
    edges = png(tmp_path / "house.png", 32, 48, seed=4)
    drop(page, "#control", edges)  # on the ControlNet box: the control image, not the input image
    page.wait_for_selector("#control-thumb[src^='blob:']")
    assert "house.png · 32×48" in page.text_content("#control-info") and not page.is_visible("#image-chosen")
    page.fill("#control-scale", "0.5")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    first = history(srv)[0]["recipe"]
    assert first["params"]["control_scale"] == 0.5 and first["params"]["control_type"] == "none"

    # a fresh page: "use these settings" restores the control image, its scale and its type
    page, log2 = open_ui(browser, srv, viewport=(w, h))
    page.wait_for_selector(".card img[src^='blob:']")
    assert page.is_disabled("#generate")
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    page.click("#reuse")
    page.wait_for_selector("#control-thumb[src^='blob:']")
    assert sha(edges) in page.text_content("#control-info") and page.input_value("#control-scale") == "0.5"
    assert not page.is_checked("#control-canny") and page.is_enabled("#generate")
    assert (page.input_value("#width"), page.input_value("#height")) == ("32", "48") and page.is_disabled("#width")
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 2")
    again = history(srv)[0]["recipe"]
    keys = ("control_image", "control_scale", "control_type", "seed", "width", "height")
    assert {k: again["params"][k] for k in keys} == {k: first["params"][k] for k in keys}
    assert again["inputs"]["control"]["sha256"] == sha(edges)
    assert log.errors == [] and log.failed == [] and log2.errors == [] and log2.failed == []


def test_use_these_settings_of_a_controlnet_image_on_a_server_without_one_says_so(browser, control_server,
                                                                                  live_server, tmp_path):
    made = control_server()
    with httpx.Client(base_url=made.url) as c:
        edges = png(tmp_path / "edges.png", 32, 32)
        up = c.post("/api/uploads", data={"role": "control"}, files={"file": ("edges.png", edges.read_bytes())})
        job = c.post("/api/jobs", json={"prompt": "a fox", "steps": 1, "control_image": up.json()["name"]}).json()
        assert wait_job(c, job["id"])["state"] == "done"
    srv = live_server()  # the same output folder, no ControlNet
    page, log = open_ui(browser, srv, viewport=SIZES["phone"])
    page.wait_for_selector(".card img[src^='blob:']")
    assert history(srv)[0]["job_id"] == job["id"]
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    assert "tiny (tiny)" in page.text_content("#viewer-recipe")
    page.click("#reuse")
    page.wait_for_selector("#message.error")
    assert "that image used tiny; this server has no ControlNet" in page.text_content("#message")
    assert not page.is_visible("#control") and page.is_enabled("#generate")
    assert log.errors == [] and log.failed == []
