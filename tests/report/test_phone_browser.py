"""The report read at a desktop (1440x900) and a phone (390x844) size in headless Chromium, offline:
nothing wider than the screen, a lightbox that shows the image first with its close button on screen,
charts with visible titles, sliders that follow the mouse and the finger (a vertical swipe scrolls),
keyboard steps, and a quant section with its slider first. Screenshots go to $ZTURBO_SCREENSHOTS."""

import json
import os
import shutil
from pathlib import Path

import pytest

import browser_support

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    path = Path(os.environ.get("ZTURBO_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    print(f"screenshots: {path}")
    return path


@pytest.fixture(scope="module")
def quant_report(tiny_sweep, tmp_path_factory):
    """The tiny sweep with its quant experiment re-planned as the article's: two recipes (steps-2 and
    steps-3, shared with the steps experiment), each re-made at a lower precision."""
    root = tmp_path_factory.mktemp("quant") / "robot"
    shutil.copytree(tiny_sweep, root, ignore=shutil.ignore_patterns("report"))
    plan = json.loads((root / "plan.json").read_text())
    plan["items"]["quant-q8"]["axes"]["source"] = "steps-2"
    plan["items"]["quant-q2"]["axes"]["source"] = "steps-3"
    exp = next(e for e in plan["experiments"] if e["name"] == "quant")
    exp["items"] = ["steps-2", "quant-q8", "steps-3", "quant-q2"]
    (root / "plan.json").write_text(json.dumps(plan))
    from zturbo.report import build_report

    return build_report(root)


@pytest.fixture(scope="module")
def browser():
    with browser_support.launch() as b:
        yield b


def open_report(browser, index, size, touch=False):
    w, h = SIZES[size]
    context = browser.new_context(viewport={"width": w, "height": h}, has_touch=touch, is_mobile=touch,
                                  device_scale_factor=1)
    context.route("**/*", lambda r: r.continue_() if r.request.url.startswith(("file:", "data:")) else r.abort())
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    return page, errors


def no_overflow(page):
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.mark.parametrize("size", SIZES)
def test_page_fits_the_screen_and_the_lightbox_shows_the_image_first(browser, quant_report, shots, size):
    page, errors = open_report(browser, quant_report, size)
    page.screenshot(path=str(shots / f"report-{size}.png"), full_page=True)
    width = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width[0] <= width[1], f"page {width[0]} px wide on a {width[1]} px screen"
    page.locator('#exp-aspect .frame[data-id="aspect-16:9"] .open').click()
    page.wait_for_function("() => document.getElementById('lb-img').naturalWidth > 0")
    vw, vh = SIZES[size]
    img = page.locator("#lb-img").bounding_box()
    assert img["width"] > vw / 2 and img["height"] > 0 and 0 <= img["y"] < vh * 0.5, img
    close = page.locator("#lb-close").bounding_box()
    assert close["x"] >= 0 and close["x"] + close["width"] <= vw and close["y"] >= 0 and close["y"] + close["height"] <= vh
    assert close["width"] >= 24 and close["height"] >= 24
    page.screenshot(path=str(shots / f"report-{size}-lightbox.png"))
    # ←/→ step through the experiment's frames
    assert page.text_content("#lb-title") == "16:9"
    page.keyboard.press("ArrowLeft")
    assert page.text_content("#lb-title") == "1:1" and page.text_content("#lb-pos") == "2 / 3"
    page.locator("#lb-close").click()
    assert not page.locator("#lightbox").is_visible()
    assert no_overflow(page) and errors == []
    page.context.close()


def test_every_chart_has_a_visible_title(browser, built_report):
    page, _ = open_report(browser, built_report, "desktop")
    charts = page.evaluate("""() => Array.from(document.querySelectorAll('svg.chart')).map(s => {
        const t = s.querySelector('.chart-title, .label'); const r = t && t.getBoundingClientRect();
        return t && r.width > 20 ? t.textContent : null; })""")
    assert len(charts) >= 10 and None not in charts, charts
    guidance = page.evaluate("Array.from(document.querySelectorAll('#exp-guidance .chart-title')).map(t => t.textContent)")
    assert len(set(guidance)) == 3 and any("%" in t for t in guidance)
    # the cost scatter: a colour per experiment, named whole in its legend
    legend = page.evaluate("Array.from(document.querySelectorAll('#cost .legend-item')).map(t => t.textContent)")
    assert legend == ["steps", "guidance", "seeds", "aspect", "resolution", "quant", "grid"]
    page.context.close()


def test_failed_frame_says_why_in_place_of_the_image(browser, built_report, shots):
    page, _ = open_report(browser, built_report, "desktop")
    tops = page.evaluate("""() => Array.from(document.querySelectorAll('#exp-guidance .frame .open'))
        .map(b => Math.round(b.getBoundingClientRect().top))""")
    assert len(set(tops)) == 1, tops  # the placeholder stands level with its neighbours
    page.locator('.frame[data-id="guidance-2.0"] .open').click()
    assert page.locator("#lb-failed").is_visible() and "out of GPU memory" in page.text_content("#lb-failed")
    assert not page.locator("#lb-full").is_visible()
    assert page.text_content("#lb-cmd-label") != "Reproduce it:"
    page.screenshot(path=str(shots / "report-phone-failed.png"))
    page.context.close()


def divider_x(page, exp):
    return page.evaluate(f"""() => {{ const c = document.querySelector('.compare[data-exp="{exp}"] .cmp').getBoundingClientRect();
        const d = document.querySelector('.compare[data-exp="{exp}"] .divider').getBoundingClientRect();
        return (d.left + d.width / 2 - c.left) / c.width; }}""")


def test_divider_follows_a_mouse_drag_and_keys(browser, built_report):
    page, _ = open_report(browser, built_report, "desktop")
    cmp = page.locator('.compare[data-exp="steps"] .cmp')
    cmp.scroll_into_view_if_needed()
    f = cmp.bounding_box()
    page.mouse.move(f["x"] + f["width"] * 0.5, f["y"] + f["height"] / 2)
    page.mouse.down()
    page.mouse.move(f["x"] + f["width"] * 0.25, f["y"] + f["height"] / 2, steps=5)
    page.mouse.up()
    assert divider_x(page, "steps") == pytest.approx(0.25, abs=0.02)
    page.locator('.compare[data-exp="steps"] .divider').focus()
    page.keyboard.press("End")
    assert divider_x(page, "steps") == pytest.approx(1.0, abs=0.02)
    page.keyboard.press("Home")
    assert divider_x(page, "steps") == pytest.approx(0.0, abs=0.02)
    # the zoomed region moves with the arrow keys
    region = page.locator('.compare[data-exp="steps"] .region')
    before = region.bounding_box()
    region.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    after = region.bounding_box()
    assert after["x"] > before["x"] and after["y"] > before["y"]
    page.context.close()


def test_divider_follows_a_finger_and_a_vertical_swipe_scrolls(browser, built_report, shots):
    page, _ = open_report(browser, built_report, "phone", touch=True)
    cmp = page.locator('.compare[data-exp="steps"] .cmp')
    cmp.scroll_into_view_if_needed()
    f = cmp.bounding_box()
    cdp = page.context.new_cdp_session(page)

    def swipe(x0, y0, x1, y1):
        cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
        for k in range(1, 9):
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [
                {"x": x0 + (x1 - x0) * k / 8, "y": y0 + (y1 - y0) * k / 8}]})
        cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    # a vertical swipe that starts on the slider scrolls the page and leaves the divider alone
    scroll = page.evaluate("window.scrollY")
    y = f["y"] + f["height"] / 2
    swipe(f["x"] + f["width"] * 0.8, y, f["x"] + f["width"] * 0.8, y - 200)
    page.wait_for_function(f"window.scrollY > {scroll} + 50")
    assert divider_x(page, "steps") == pytest.approx(0.5, abs=0.02)
    # a sideways drag moves it
    cmp.scroll_into_view_if_needed()
    f = cmp.bounding_box()
    y = f["y"] + f["height"] / 2
    swipe(f["x"] + f["width"] * 0.5, y, f["x"] + f["width"] * 0.2, y)
    assert divider_x(page, "steps") == pytest.approx(0.2, abs=0.03)
    page.locator('.compare[data-exp="steps"]').screenshot(path=str(shots / "report-phone-slider.png"))
    page.context.close()


def test_slider_labels_defaults_and_box(browser, built_report):
    page, _ = open_report(browser, built_report, "desktop")
    seeds = page.locator('.compare[data-exp="seeds"]')
    # seeds: pick a row (orientation), then two of its seeds, each named with its orientation
    assert seeds.locator("select.group option").all_inner_texts() == ["portrait", "landscape"]
    texts = seeds.locator('.pick[data-side="a"] option').all_inner_texts()
    assert texts == ["seed 0 · portrait 32×48", "seed 7 · portrait 32×48"]
    seeds.locator("select.group").select_option("landscape")
    assert seeds.locator(".tag-a").inner_text() == "seed 0 · landscape 48×32"
    # neighbours by default; the box takes the shape of the frames shown
    aspect = page.locator('.compare[data-exp="aspect"]')
    assert [aspect.locator(f'.pick[data-side="{s}"]').input_value() for s in "ab"] == ["aspect-2:3", "aspect-1:1"]
    def ratio():
        b = aspect.locator(".cmp").bounding_box()
        return b["width"] / b["height"]
    assert ratio() == pytest.approx(32 / 48, rel=0.03)
    aspect.locator('.pick[data-side="a"]').select_option("aspect-16:9")
    assert ratio() == pytest.approx(2.0, rel=0.03)
    page.context.close()


def test_quant_section_slider_first_recipe_then_precisions(browser, quant_report, shots):
    page, _ = open_report(browser, quant_report, "desktop")
    order = page.evaluate("""() => Array.from(document.querySelectorAll('#exp-quant > .compare, #exp-quant > details.fold'))
        .map(n => n.tagName)""")
    assert order == ["DIV", "DETAILS"]  # the slider, then the folded grid
    assert not page.locator('#exp-quant details.fold .frame').first.is_visible()
    q = page.locator('.compare[data-exp="quant"]')
    recipes = q.locator("select.group option").all_inner_texts()
    assert len(recipes) == 2 and "2 steps" in recipes[0] and "3 steps" in recipes[1]
    assert q.locator('.pick[data-side="a"] option').all_inner_texts() == ["bf16", "Q8"]
    q.locator("select.group").select_option(index=1)
    assert q.locator('.pick[data-side="a"] option').all_inner_texts() == ["bf16", "Q2"]
    assert [q.locator(f'.pick[data-side="{s}"]').input_value() for s in "ab"] == ["steps-3", "quant-q2"]
    # cost: the shared bf16 frames are counted once
    rows = page.evaluate("Array.from(document.querySelectorAll('#cost tbody tr')).map(r => r.cells[1].textContent)")
    # 21 images made, less quant-bf16 (left out by the re-plan); steps-2 and steps-3 once, not twice (22)
    assert rows[-1] == "20"
    page.locator("#exp-quant").screenshot(path=str(shots / "report-quant.png"))
    page.context.close()


def test_sticky_nav_and_a_report_folder_copied_alone(browser, built_report, tmp_path):
    alone = tmp_path / "report"
    shutil.copytree(built_report.parent, alone)
    page, _ = open_report(browser, alone / "index.html", "phone")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight / 2)")
    nav = page.locator("nav").bounding_box()
    assert nav["y"] == pytest.approx(0, abs=1) and page.locator("nav .top-link").is_visible()
    # the originals are not there: the slider shows the thumbnails and says where they were expected
    note = page.locator('.compare[data-exp="steps"] .cmp-missing')
    note.wait_for(state="visible")
    assert "keep report/ inside its sweep folder" in note.inner_text()
    assert page.evaluate("""() => document.querySelector('.compare[data-exp="steps"] .img-a').naturalWidth""") > 0
    assert "full-size originals are read from" in page.text_content("header .where")
    page.context.close()
