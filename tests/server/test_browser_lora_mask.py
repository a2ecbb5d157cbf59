"""The web UI's LoRA picker (shown only with --lora-dir), mask painting over the input image, and "use these
settings" bringing back a job's input image, mask, strength and LoRAs; in headless Chromium on the tiny model."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from server_support import serving
from test_browser import browser, open_ui, shot  # noqa: F401  (browser: the module's Chromium fixture)
from test_browser_inputs import SIZES, no_sideways_scroll, png
from test_lora_dir import lora_dir, lora_engine  # noqa: F401  (fixtures)


@pytest.fixture
def lora_server(lora_engine, tmp_path):  # noqa: F811
    yield from serving(lora_engine, tmp_path / "out")


def small_targets(page, within):
    return page.evaluate("""(within) => [...document.querySelectorAll(within + ' :is(button, input, select)')]
        .filter(e => e.offsetParent !== null).map(e => [e.id || e.type, e.getBoundingClientRect()])
        .filter(([, r]) => r.width < 24 || r.height < 24).map(([n, r]) => `${n} ${r.width}x${r.height}`)""", within)


def history(srv):
    return httpx.get(srv.url + "/api/history").json()["items"]


def lora_row(page, name):
    return page.locator(f".lora-row[data-name='{name}']")


@pytest.mark.parametrize("size", SIZES)
def test_pick_a_lora_and_generate(browser, lora_server, lora_dir, size):  # noqa: F811
    srv = lora_server(lora_dir=lora_dir)
    w, h = SIZES[size]
    page, log = open_ui(browser, srv, viewport=(w, h))
    page.wait_for_selector("#loras:not([hidden]) .lora-row")
    assert "style.safetensors" in page.text_content("#lora-list") and "outside" not in page.text_content("#lora-list")
    row = lora_row(page, "style.safetensors")
    assert not row.locator(".lora-scale").is_visible()
    row.locator("input[type=checkbox]").check()
    row.locator("input[type=number]").fill("0.6")
    assert row.locator("input[type=range]").input_value() == "0.6"
    page.fill("#prompt", "a fox in a style")
    page.fill("#width", "32")
    page.fill("#height", "32")
    page.fill("#steps", "2")
    assert no_sideways_scroll(page, w) and small_targets(page, "#loras") == []
    shot(page, f"lora-picker-{size}")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    loras = history(srv)[0]["recipe"]["loras"]
    assert [(x["name"], x["scale"], x["fused"]) for x in loras] == [("style.safetensors", 0.6, False)]
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    assert "style.safetensors × 0.6" in page.text_content("#viewer-recipe")
    assert log.errors == [] and log.failed == []


def test_without_a_lora_dir_there_is_no_picker(browser, lora_server):
    srv = lora_server()
    page, log = open_ui(browser, srv)
    page.wait_for_function("() => document.querySelector('#lora-list') !== null")
    assert not page.is_visible("#loras") and log.errors == []


def paint_right_half(page):
    page.evaluate("() => { const s = document.getElementById('brush-size'); s.value = 16; "
                  "s.dispatchEvent(new Event('input')); }")
    page.locator("#mask-canvas").scroll_into_view_if_needed()
    box = page.locator("#mask-canvas").bounding_box()
    x = box["x"] + box["width"] * 0.75
    page.mouse.move(x, box["y"] + box["height"] * 0.05)
    page.mouse.down()
    for f in (0.3, 0.6, 0.95):
        page.mouse.move(x, box["y"] + box["height"] * f)
    page.mouse.up()


@pytest.mark.parametrize("size", SIZES)
def test_paint_a_mask_then_use_these_settings_brings_the_inputs_back(browser, lora_server, lora_dir, tmp_path,
                                                                     size):  # noqa: F811
    srv = lora_server(lora_dir=lora_dir)
    w, h = SIZES[size]
    page, log = open_ui(browser, srv, viewport=(w, h))
    page.wait_for_selector("#loras:not([hidden]) .lora-row")
    page.fill("#prompt", "repaint the right side")
    page.fill("#steps", "2")
    page.set_input_files("#image-file", str(png(tmp_path / "photo.png")))
    page.wait_for_selector("#image-thumb[src^='blob:']")
    page.click("#paint-start")
    assert page.is_visible("#mask-canvas") and "white = repaint" in page.text_content("#paint")
    page.click("#generate")  # nothing painted yet: said, and nothing is sent
    assert "the mask is empty" in page.text_content("#message") and history(srv) == []
    paint_right_half(page)
    page.fill("#strength", "0.7")
    lora_row(page, "kohya.safetensors").locator("input[type=checkbox]").check()
    assert no_sideways_scroll(page, w) and small_targets(page, "#paint") == []
    shot(page, f"mask-painting-{size}")
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    recipe = history(srv)[0]["recipe"]
    p = recipe["params"]
    assert recipe["mode"] == "inpainting" and p["strength"] == 0.7
    mask_name = p["mask"].rsplit("/", 1)[-1]
    mask = np.asarray(Image.open(io.BytesIO(httpx.get(f"{srv.url}/api/uploads/{mask_name}").content)).convert("L"))
    assert mask.shape == (48, 64)  # the input image's size
    assert mask[24, 48] == 255 and mask[24, 8] == 0 and mask[:, :32].max() == 0  # white = repaint, where painted

    # a fresh page: "use these settings" restores the input image, the mask, the strength and the LoRA
    page, log2 = open_ui(browser, srv, viewport=(w, h))
    page.wait_for_selector(".card img[src^='blob:']")
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    page.click("#reuse")
    page.wait_for_selector("#image-thumb[src^='blob:']")
    page.wait_for_selector("#mask-chosen:not([hidden])")
    assert page.input_value("#strength") == "0.7" and mask_name in page.text_content("#mask-info")
    assert page.input_value("#width") == "64" and page.input_value("#height") == "48"
    assert lora_row(page, "kohya.safetensors").locator("input[type=checkbox]").is_checked()
    assert not lora_row(page, "style.safetensors").locator("input[type=checkbox]").is_checked()
    page.click("#generate")
    page.wait_for_function("() => document.querySelectorAll('.card').length === 2")
    again = history(srv)[0]["recipe"]
    assert {k: again["params"][k] for k in ("image", "mask", "strength", "seed")} == \
           {k: p[k] for k in ("image", "mask", "strength", "seed")}
    assert again["loras"] == recipe["loras"]
    assert log.errors == [] and log.failed == [] and log2.errors == [] and log2.failed == []
