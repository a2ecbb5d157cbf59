"""The web UI in headless Chromium against a live server on the tiny model: generate and watch the
passes, find the image in the gallery, compare two, cancel, a phone-sized screen, a token server.
Screenshots are kept in build/screenshots/ (or $ZTURBO_SCREENSHOTS)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from browser_support import launch, open_page

SHOTS = Path(os.environ.get("ZTURBO_SCREENSHOTS") or Path(__file__).resolve().parents[2] / "build" / "screenshots")


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"serve-{name}.png"), full_page=True)


def open_ui(browser, srv, viewport=(1280, 900)):
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"), viewport=viewport)
    page.goto(srv.url + "/")
    page.wait_for_selector("#precision:not(:empty)")
    return page, log


def fill_small(page, prompt, steps=3):
    page.fill("#prompt", prompt)
    page.fill("#width", "64")
    page.fill("#height", "64")
    page.fill("#steps", str(steps))


def clean(log):
    assert log.errors == [] and log.blocked == [] and log.failed == [], log


def test_generate_watch_the_passes_and_find_the_image(browser, live_server, engine):
    srv = live_server()
    page, log = open_ui(browser, srv)
    assert page.text_content("#model").startswith("zturbo-tiny") and page.text_content("#precision")
    fill_small(page, "a red fox in the snow", steps=3)
    page.click("#seed-dice")
    seed = page.input_value("#seed")
    assert page.text_content("#seed-lock") == "Locked"
    engine.hold()  # park the job at the end of its first pass, to look at the progress
    page.click("#generate")
    page.wait_for_selector("#preview[src^='data:image/jpeg']:not([hidden])")
    assert page.text_content("#step-count") == "pass 1/3" and page.text_content("#status") == "running"
    assert page.is_disabled("#generate") and page.is_enabled("#cancel")
    shot(page, "progress")
    engine.release()
    page.wait_for_selector(".card img[src^='blob:']")
    assert page.text_content("#status") == "done" and "saved 1 image" in page.text_content("#message")
    assert f"seed {seed}" in page.text_content(".card figcaption")
    shot(page, "gallery")
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    cmd = page.text_content("#viewer-cmd")
    assert cmd.startswith("zturbo generate 'a red fox in the snow'") and f"--seed {seed}" in cmd
    assert page.get_attribute("#download", "download").endswith(".png")
    assert page.get_attribute("#download", "href").startswith("blob:")
    shot(page, "viewer")
    page.click("#copy-cmd")
    page.wait_for_selector("#copy-cmd:has-text('Copied')")
    # "use these settings" puts the recipe back in the form, seed locked
    page.fill("#prompt", "something else")
    page.click("#reuse")
    assert page.input_value("#prompt") == "a red fox in the snow" and page.input_value("#seed") == seed
    assert page.text_content("#seed-lock") == "Locked" and page.input_value("#steps") == "3"
    clean(log)


def test_compare_two_images_with_the_slider(browser, live_server):
    srv = live_server()
    for seed in (1, 2):
        r = httpx.post(srv.url + "/v1/images/generations", timeout=60,
                       json={"prompt": "a robot", "size": "64x64", "steps": 1 + seed, "seed": seed})
        assert r.status_code == 200
    page, log = open_ui(browser, srv)
    page.wait_for_selector(".card:nth-child(2) img[src^='blob:']")
    assert page.is_disabled("#compare-btn")
    boxes = page.query_selector_all(".card input[type=checkbox]")
    boxes[0].check()
    boxes[1].check()
    assert page.text_content("#compare-btn") == "Compare (2/2)"
    page.click("#compare-btn")
    page.wait_for_selector("#compare[open] #cmp-b[src^='blob:']")
    assert "seed 2" in page.text_content("#cmp-a-label") and "seed 1" in page.text_content("#cmp-b-label")
    page.fill("#cmp-slider", "20")
    assert page.evaluate("() => document.getElementById('cmp-a').style.clipPath") == "inset(0px 80% 0px 0px)"
    shot(page, "compare")
    clean(log)


def test_cancel_a_job_from_the_ui(browser, live_server, engine):
    srv = live_server()
    page, log = open_ui(browser, srv)
    fill_small(page, "cancel me", steps=4)
    engine.hold()
    page.click("#generate")
    page.wait_for_selector("#step-count:has-text('pass 1/4')")
    page.reload()  # the tab finds its running job again
    page.wait_for_selector("#step-count:has-text('pass 1/4')")
    assert page.is_enabled("#cancel")
    page.click("#cancel")
    page.wait_for_selector("#status:has-text('cancelled')")
    assert "nothing was saved" in page.text_content("#message")
    assert page.is_enabled("#generate") and page.query_selector_all(".card") == []
    assert not page.is_visible("#preview")  # the discarded image is not shown either
    assert httpx.get(srv.url + "/api/history").json()["total"] == 0
    shot(page, "cancelled")
    log.failed = [f for f in log.failed if "/events (net::ERR_ABORTED)" not in f]  # the stream the reload cut
    clean(log)


def test_bad_input_shows_the_cli_message(browser, live_server):
    srv = live_server()
    page, log = open_ui(browser, srv)
    page.fill("#prompt", "x")
    page.fill("#width", "1000")
    page.click("#generate")
    page.wait_for_selector("#message.error")
    assert "width 1000 is not a multiple of 16" in page.text_content("#message")
    assert [e for e in log.errors if "422" not in e] == []  # the browser logs the 422 itself


def test_the_guidance_box_has_the_servers_limit_and_a_larger_one_is_explained(browser, live_server):
    srv = live_server()
    page, log = open_ui(browser, srv)
    assert page.get_attribute("#guidance", "max") == "30"
    page.fill("#prompt", "x")
    page.fill("#guidance", "50")
    page.click("#generate")
    page.wait_for_selector("#message.error")
    assert "guidance must be <= 30, got 50" in page.text_content("#message")


def test_usable_on_a_phone(browser, live_server, engine):
    srv = live_server()
    page, log = open_ui(browser, srv, viewport=(390, 844))
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    fill_small(page, "a small screen", steps=2)
    box = page.query_selector("#generate").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["height"] >= 40  # a thumb-sized target
    page.click("#generate")
    page.wait_for_selector(".card img[src^='blob:']")
    page.click(".card img")
    page.wait_for_selector("#viewer[open]")
    assert page.query_selector("#viewer-img").bounding_box()["width"] <= 390
    shot(page, "phone")
    clean(log)


def test_a_token_server_asks_for_the_token_once(browser, live_server):
    srv = live_server(token="let-me-in")
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"))
    page.goto(srv.url + "/")
    page.wait_for_selector("#token-dialog[open]")
    page.fill("#token", "let-me-in")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#precision:not(:empty)")
    page.reload()
    page.wait_for_selector("#precision:not(:empty)")  # remembered in this browser
    assert not page.is_visible("#token-dialog")
    assert [e for e in log.errors if "401" not in e] == []


def test_api_docs_page_lists_the_endpoints_without_a_cdn(browser, live_server):
    srv = live_server()
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"))
    page.goto(srv.url + "/docs")
    page.wait_for_selector(".endpoint")
    text = page.text_content("#endpoints")
    assert "/v1/images/generations" in text and "/api/jobs/{job_id}/events" in text and "response_format" in text
    clean(log)


def test_api_docs_curl_example_stays_inside_the_page(browser, live_server):
    srv = live_server()
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"), viewport=(1280, 900))
    page.goto(srv.url + "/docs")
    page.wait_for_selector(".endpoint")
    fits = page.evaluate("""() => [...document.querySelectorAll('pre')].every(p => {
        const r = p.getBoundingClientRect(), box = p.parentElement.getBoundingClientRect();
        return p.scrollWidth <= p.clientWidth + 1 && r.right <= box.right + 1; })""")
    assert fits, "a <pre> on /docs is wider than the page column"
    clean(log)


# ---- issue 16: the compare dialog, errors where the user looks, the header, the docs page, a phone ----

SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def make_two(srv):
    for seed in (1, 4294967295):
        r = httpx.post(srv.url + "/v1/images/generations", timeout=60,
                       json={"prompt": "a robot", "size": "64x64", "steps": 1, "seed": seed})
        assert r.status_code == 200


def inside(box, w, h):
    return box["x"] >= 0 and box["y"] >= 0 and box["x"] + box["width"] <= w + 0.5 and box["y"] + box["height"] <= h + 0.5


@pytest.mark.parametrize("size", SIZES)
def test_compare_fits_the_screen_and_follows_mouse_and_finger(browser, live_server, size):
    srv = live_server()
    make_two(srv)
    w, h = SIZES[size]
    context = browser.new_context(viewport={"width": w, "height": h}, has_touch=size == "phone", is_mobile=size == "phone")
    page = context.new_page()
    page.goto(srv.url + "/")
    page.wait_for_selector(".card:nth-child(2) img[src^='blob:']")
    for label in page.query_selector_all(".card .pick")[:2]:
        label.click()
    page.click("#compare-btn")
    page.wait_for_selector("#compare[open] #cmp-b[src^='blob:']")
    # the slider and the whole image are on screen together
    box = page.locator("#compare-box").bounding_box()
    assert inside(page.locator("#cmp-slider").bounding_box(), w, h) and inside(box, w, h), box
    assert page.get_attribute("#cmp-a", "draggable") == "false"
    y = box["y"] + box["height"] / 2
    x0, x1 = box["x"] + box["width"] * 0.5, box["x"] + box["width"] * 0.25
    if size == "phone":
        cdp = context.new_cdp_session(page)
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y}]})
        for k in range(1, 7):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x0 + (x1 - x0) * k / 6, "y": y}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    else:
        page.mouse.move(x0, y)
        page.mouse.down()
        page.mouse.move(x1, y, steps=6)
        page.mouse.up()
    assert int(page.input_value("#cmp-slider")) == pytest.approx(25, abs=2)
    line = page.locator("#cmp-line").bounding_box()
    assert line["x"] == pytest.approx(x1, abs=4)
    shot(page, f"compare-{size}")
    context.close()


@pytest.mark.parametrize("size", SIZES)
def test_a_bad_size_after_a_good_image_shows_the_error_in_view(browser, live_server, size):
    srv = live_server()
    w, h = SIZES[size]
    page, log = open_ui(browser, srv, viewport=(w, h))
    fill_small(page, "first a good one", steps=1)
    page.click("#generate")
    page.wait_for_selector("#status:has-text('done')")
    page.wait_for_selector("#preview:not([hidden])")
    page.fill("#width", "1000")
    page.click("#generate")
    page.wait_for_selector("#message.error")
    assert "width 1000 is not a multiple of 16" in page.text_content("#message")
    assert page.text_content("#status") != "done" and not page.is_visible("#preview")
    assert inside(page.locator("#message").bounding_box(), w, h)
    shot(page, f"bad-size-{size}")
    assert [e for e in log.errors if "422" not in e] == []


def test_header_says_running_while_a_job_runs_and_captions_keep_the_seed(browser, live_server, engine):
    srv = live_server()
    make_two(srv)
    page, log = open_ui(browser, srv, viewport=(390, 844))
    assert page.text_content("#queue") == "idle"
    fill_small(page, "hold on", steps=2)
    engine.hold()
    page.click("#generate")
    page.wait_for_selector("#step-count:has-text('pass 1/2')")
    assert page.text_content("#queue").startswith("running")
    engine.release()
    page.wait_for_selector("#status:has-text('done')")
    page.wait_for_selector("#queue:has-text('idle')")
    # the longest seed is shown whole on a phone's card
    seed = page.locator(".card .seed", has_text="4294967295")
    card = seed.locator("xpath=ancestor::figure").bounding_box()
    s = seed.bounding_box()
    assert seed.inner_text() == "seed 4294967295" and s["x"] + s["width"] <= card["x"] + card["width"]
    assert page.evaluate("""() => [...document.querySelectorAll('.card .seed')].every(e => e.scrollWidth <= e.clientWidth + 1)""")
    clean(log)


def test_tap_targets_are_at_least_24px_on_a_phone(browser, live_server):
    srv = live_server()
    make_two(srv)
    page, log = open_ui(browser, srv, viewport=(390, 844))
    page.wait_for_selector(".card img[src^='blob:']")
    small = page.evaluate("""() => [...document.querySelectorAll(
            'button, input, select, textarea, summary, .docs-link, .card .pick')]
        .filter(e => e.offsetParent !== null && !e.closest('dialog') && !e.closest('.card .pick') || e.matches('.card .pick'))
        .map(e => [e.id || e.className || e.tagName, e.getBoundingClientRect()])
        .filter(([, r]) => r.width < 24 || r.height < 24).map(([n, r]) => `${n} ${r.width}x${r.height}`)""")
    assert small == []
    clean(log)


def test_docs_page_names_this_server_and_asks_for_the_token(browser, live_server):
    srv = live_server(token="let-me-in")
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"), viewport=(390, 844))
    page.goto(srv.url + "/docs")
    page.wait_for_selector("#token-form:not([hidden])")
    assert page.text_content("#origin") == srv.url  # the real port, not 7860
    assert "needs a token" in page.text_content("#endpoints") and page.is_visible("#auth")
    page.fill("#token", "let-me-in")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector(".endpoint")
    assert not page.is_visible("#token-form") and "/v1/images/generations" in page.text_content("#endpoints")
    assert "Authorization: Bearer" in page.text_content("#curl")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shot(page, "docs-token-phone")
    assert [e for e in log.errors if "401" not in e] == []
