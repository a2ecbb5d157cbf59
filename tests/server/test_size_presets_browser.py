"""The web UI's size presets follow the size in the boxes: a typed preset size lights up its aspect and
megapixels, any other typed size shows its own MP as "custom" (headless Chromium, live tiny server)."""

from __future__ import annotations

import httpx
import pytest
from browser_support import launch, open_page


@pytest.fixture(scope="module")
def browser():
    with launch() as b:
        yield b


def pressed(page):
    return page.eval_on_selector_all("#aspects button[aria-pressed=true]", "bs => bs.map(b => b.dataset.aspect)")


def shown_mp(page):
    return page.eval_on_selector("#megapixels", "s => s.options[s.selectedIndex].textContent")


def test_megapixels_and_aspect_follow_a_typed_size(browser, live_server):
    srv = live_server()
    presets = httpx.get(srv.url + "/api/health").json()["presets"]
    page, log = open_page(browser, allow=(srv.url, "data:", "blob:"))
    page.goto(srv.url + "/")
    page.wait_for_selector("#precision:not(:empty)")
    assert (page.input_value("#width"), page.input_value("#height")) == ("1024", "1024")
    assert pressed(page) == ["1:1"] and shown_mp(page) == "1 MP"

    page.click("#aspects button[data-aspect='16:9']")
    assert pressed(page) == ["16:9"] and shown_mp(page) == "1 MP"

    h169 = presets["16:9"]["1"][1]
    page.fill("#width", "720")  # typed: 720 x the 16:9 height is no preset
    assert pressed(page) == [] and shown_mp(page) == f"{round(720 * h169 / 2**20, 2):g} MP (custom)"
    page.fill("#height", "1280")
    assert pressed(page) == [] and shown_mp(page) == "0.88 MP (custom)"

    w, h = presets["1:1"]["0.25"]  # typed, but it is a preset's size: the preset shows again
    page.fill("#width", str(w))
    page.fill("#height", str(h))
    assert pressed(page) == ["1:1"] and shown_mp(page) == "0.25 MP"
    assert page.eval_on_selector_all("#megapixels option[value=custom]", "os => os.length") == 0

    page.fill("#width", "512")
    page.fill("#height", "768")
    page.select_option("#megapixels", "2")  # a preset picked after a custom size: the last aspect, at 2 MP
    assert [page.input_value("#width"), page.input_value("#height")] == [str(v) for v in presets["1:1"]["2"]]
    assert pressed(page) == ["1:1"] and shown_mp(page) == "2 MP"
    assert log.errors == [] and log.blocked == []
    page.context.close()
