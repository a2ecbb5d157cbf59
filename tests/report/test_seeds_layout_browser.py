"""The seeds experiment as the article lays it out: eight seeds in two rows of four, for the portrait
and the landscape frames alike, in a wide and a narrow window (headless Chromium, offline)."""

import os
from pathlib import Path

import pytest

import browser_support
from zturbo.cli import main


@pytest.fixture(scope="module")
def seeds_report(tmp_path_factory):
    browser_support.require_browser()
    out = tmp_path_factory.mktemp("seeds") / "sweep"
    # 144x256 and 256x144 are the article's 720x1280 and 1280x720 shapes, scaled down
    assert main(["sweep", "seeds", "--model", "tiny", "--device", "cpu", "--size", "144x256", "--steps", "1",
                 "--rng", "cpu", "--out", str(out), "-q"]) == 0
    assert main(["report", str(out)]) == 0
    return out / "report" / "index.html"


@pytest.mark.parametrize("width", [1280, 900])
def test_eight_seeds_lay_out_as_two_rows_of_four_per_orientation(seeds_report, width, tmp_path):
    shots = Path(os.environ.get("ZTURBO_SCREENSHOTS") or tmp_path)
    with browser_support.launch() as browser:
        page, log = browser_support.open_page(browser, viewport=(width, 900))
        page.goto(seeds_report.as_uri())
        page.wait_for_load_state("load")
        rows = page.evaluate("""() => Array.from(document.querySelectorAll('#exp-seeds .frames')).map(row =>
            Array.from(row.querySelectorAll('.frame img')).map(img => {
                const r = img.getBoundingClientRect(); return [Math.round(r.top), r.right]; }))""")
        page.locator("#exp-seeds").screenshot(path=str(shots / f"report-seeds-{width}.png"))
        overflow = page.evaluate("document.documentElement.scrollWidth") > width
        page.context.close()
    assert len(rows) == 2  # portrait, then landscape
    for frames in rows:
        tops = sorted({top for top, _ in frames})
        assert len(frames) == 8 and len(tops) == 2
        assert [sum(1 for top, _ in frames if top == t) for t in tops] == [4, 4]
        assert max(right for _, right in frames) <= width
    assert not overflow and log.errors == [] and log.blocked == []
