"""The report in headless Chromium, opened from disk with every non-file request blocked, after the
sweep folder was zipped and unpacked elsewhere: what a reader sees when hovering, clicking, sliding."""

import os
import shutil
from pathlib import Path

import pytest

import browser_support


@pytest.fixture(scope="module")
def page(built_report, tmp_path_factory):
    browser_support.require_browser()
    sweep = built_report.parent.parent
    moved = tmp_path_factory.mktemp("moved")
    archive = shutil.make_archive(str(moved / "sweep"), "zip", sweep.parent, sweep.name)
    shutil.unpack_archive(archive, moved / "unzipped")
    index = moved / "unzipped" / sweep.name / "report" / "index.html"
    shots = Path(os.environ.get("ZTURBO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    with browser_support.launch() as browser:
        pg, log = browser_support.open_page(browser)
        pg.goto(index.as_uri())
        pg.wait_for_load_state("load")
        pg.screenshot(path=str(shots / "report.png"), full_page=True)
        print(f"screenshots: {shots}")
        yield pg, log, shots
        pg.context.close()


@pytest.fixture(autouse=True)
def _closed_lightbox(request):
    """Each test starts with the lightbox closed, whatever the previous one left behind."""
    yield
    if "page" in request.fixturenames:
        request.getfixturevalue("page")[0].evaluate("() => { const d = document.getElementById('lightbox'); if (d.open) d.close(); }")


def box(loc):
    return loc.bounding_box()


def test_page_loads_offline_with_every_image(page):
    pg, log, _ = page
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    broken = pg.evaluate("""() => Array.from(document.querySelectorAll("main img"))
        .filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.currentSrc || i.outerHTML)""")
    assert broken == []
    assert pg.locator("main img").count() > 21
    assert log.errors == [] and log.failed == [] and log.blocked == []


def test_hover_enlarges_a_frame(page):
    pg, _, shots = page
    img = pg.locator('#exp-steps .frame[data-id="steps-2"] img')
    img.scroll_into_view_if_needed()
    pg.mouse.move(0, 0)
    before = box(img)
    img.hover()
    pg.wait_for_function("""() => {
        const r = document.querySelector('#exp-steps .frame[data-id="steps-2"] img').getBoundingClientRect();
        return r.width > %f * 1.5; }""" % before["width"])
    pg.screenshot(path=str(shots / "hover.png"))
    pg.mouse.move(0, 0)


def test_click_opens_full_size_with_recipe_and_command(page):
    pg, _, shots = page
    pg.locator('#exp-guidance .frame[data-id="guidance-1.0"] .open').click()
    dialog = pg.locator("#lightbox")
    assert dialog.is_visible()
    pg.wait_for_function("() => document.getElementById('lb-img').naturalWidth > 0")
    assert pg.locator("#lb-img").get_attribute("src").endswith("guidance/guidance-1.0.png")
    recipe = pg.locator("#lb-recipe").inner_text()
    assert "seed\t42" in recipe and "passes\t2" in recipe and "size\t32×32" in recipe
    cmd = pg.locator("#lb-cmd").inner_text()
    assert cmd.startswith("zturbo generate 'a sleek black") and "--guidance 1 " in cmd and "--seed 42" in cmd
    pg.locator("#lb-copy").click()  # the clipboard answers asynchronously
    pg.wait_for_function("() => document.getElementById('lb-copied').textContent !== ''")
    assert pg.locator("#lb-copied").inner_text() in ("copied", "select and copy by hand")
    pg.screenshot(path=str(shots / "lightbox.png"))
    pg.keyboard.press("Escape")
    assert not dialog.is_visible()
    pg.locator('.frame[data-id="guidance-2.0"] .open').click()  # a failed frame says why
    assert "out of GPU memory" in pg.locator("#lb-recipe").inner_text()
    pg.keyboard.press("Escape")


def test_slider_pickers_never_show_the_same_frame(page):
    pg, _, _ = page
    cmp = pg.locator('.compare[data-exp="steps"]')
    a, b = cmp.locator('.pick[data-side="a"]'), cmp.locator('.pick[data-side="b"]')
    assert (a.input_value(), b.input_value()) == ("steps-1", "steps-2")  # neighbours by default
    # the other side's frame cannot be picked ...
    assert a.locator('option[value="steps-2"]').is_disabled()
    b.select_option("steps-3")
    assert a.locator('option[value="steps-3"]').is_disabled() and not a.locator('option[value="steps-2"]').is_disabled()
    # ... and forcing it anyway moves the other side
    pg.evaluate("""() => { const s = document.querySelector('.compare[data-exp="steps"] .pick[data-side="a"]');
        s.value = 'steps-3'; s.dispatchEvent(new Event('change')); }""")
    assert a.input_value() == "steps-3" and b.input_value() != "steps-3"
    srcs = [cmp.locator(f".img-{s}").get_attribute("src") for s in "ab"]
    assert srcs[0] != srcs[1] and "steps-3" in srcs[0]
    assert cmp.locator(".tag-a").inner_text() == "3 steps"


def test_dragging_moves_the_divider(page):
    pg, _, shots = page
    frame = pg.locator('.compare[data-exp="quant"] .cmp')
    frame.scroll_into_view_if_needed()
    f = box(frame)
    divider = pg.locator('.compare[data-exp="quant"] .divider')
    assert box(divider)["x"] + 1 == pytest.approx(f["x"] + f["width"] / 2, abs=3)
    pg.mouse.move(f["x"] + f["width"] / 2, f["y"] + f["height"] / 2)
    pg.mouse.down()
    pg.mouse.move(f["x"] + f["width"] * 0.2, f["y"] + f["height"] / 2, steps=5)
    pg.mouse.up()
    assert box(divider)["x"] + 1 == pytest.approx(f["x"] + f["width"] * 0.2, abs=3)
    # the left frame is clipped at the divider
    clip = pg.evaluate("""() => getComputedStyle(document.querySelector('.compare[data-exp="quant"] .side-a')).clipPath""")
    assert "80%" in clip
    pg.screenshot(path=str(shots / "slider.png"))


def test_zoomed_region_follows_the_drag_with_both_sides_in_register(page):
    pg, _, shots = page
    cmp = pg.locator('.compare[data-exp="guidance"]')
    cmp.scroll_into_view_if_needed()
    assert cmp.get_attribute("data-mode") == "zoom"  # the article's "head detail" view by default
    mini, region = cmp.locator(".mini-frame"), cmp.locator(".region")
    before = box(region)
    m = box(mini)
    pg.mouse.move(before["x"] + before["width"] / 2, before["y"] + before["height"] / 2)
    pg.mouse.down()
    pg.mouse.move(m["x"] + m["width"] * 0.75, m["y"] + m["height"] * 0.7, steps=5)
    pg.mouse.up()
    after = box(region)
    assert after["x"] + after["width"] / 2 == pytest.approx(m["x"] + m["width"] * 0.75, abs=3)
    assert after["y"] + after["height"] / 2 == pytest.approx(m["y"] + m["height"] * 0.7, abs=3)
    transforms = pg.evaluate("""() => Array.from(document.querySelectorAll('.compare[data-exp="guidance"] .inner'))
        .map(n => getComputedStyle(n).transform)""")
    assert len(transforms) == 2 and transforms[0] == transforms[1] != "none"
    pg.screenshot(path=str(shots / "zoom.png"))
    cmp.locator('input[value="full"]').check()
    assert cmp.get_attribute("data-mode") == "full" and not mini.is_visible()
    assert pg.evaluate("""() => getComputedStyle(document.querySelector('.compare[data-exp="guidance"] .inner')).transform""") == "none"
