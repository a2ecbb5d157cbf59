"""The report of an image-to-image / inpainting sweep shows the input (and mask) beside each row: the
right input for each row of a --vary image grid, above each column when x varies the image, at the
input's true proportions, enlarged on hover, read from the sweep's own copy after the original moved."""

import hashlib
import re
import shutil

import numpy as np
import pytest
from PIL import Image

import browser_support
from zturbo.cli import main

TINY = ["--model", "tiny", "--rng", "cpu", "--steps", "2", "-q", "--prompt", "a fox"]


def _noise(path, seed, w, h):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("inputs")
    a, b = _noise(tmp / "wide.png", 1, 64, 32), _noise(tmp / "tall.jpg", 2, 32, 64)
    mask = tmp / "mask.png"
    m = np.zeros((32, 64), np.uint8)
    m[:, 32:] = 255
    Image.fromarray(m).save(mask)
    (tmp / "cols.toml").write_text(f'name = "cols"\nprompt = "a fox"\n[axes]\nimage = ["{a}", "{b}"]\nstrength = [0.5, 1]\n')
    (tmp / "paint.toml").write_text(f'name = "paint"\nprompt = "a fox"\n[params]\nimage = "{a}"\nmask = "{mask}"\n'
                                    '[axes]\nstrength = [0.5, 1]\n')
    out = tmp / "sweep"
    assert main(["sweep", "--vary", "strength=0.5,1", "--vary", f"image={a},{b}", "--name", "rows",
                 "--file", str(tmp / "cols.toml"), "--file", str(tmp / "paint.toml"), "--out", str(out), *TINY]) == 0
    shas = {"wide": _sha(a), "tall": _sha(b), "mask": _sha(mask)}
    for f in (a, b, mask):  # the report reads the sweep's copies, not the originals
        shutil.move(f, tmp / f"moved-{f.name}")
    from zturbo.report import build_report

    return build_report(out), shas


def _section(html, name):
    return html.split(f'id="exp-{name}"')[1].split("</section>")[0]


def test_each_row_shows_its_own_input_and_an_inpaint_row_its_mask(sweep):
    index, shas = sweep
    html = index.read_text()
    rows = _section(html, "rows")  # y = image: an input cell starts each row, the right one
    row_cells = re.findall(r'<tr><th scope="row">([^<]*)</th><td class="input-cell">(.*?)</td>', rows)
    assert [(y, [s for s in shas if shas[s] in cell]) for y, cell in row_cells] == [("wide.png", ["wide"]),
                                                                                    ("tall.jpg", ["tall"])]
    assert 'width="260" height="130"' in row_cells[0][1] and 'width="65" height="130"' in row_cells[1][1]  # true proportions
    cols = _section(html, "cols")  # x = image: the input heads its column
    assert 'class="input-cell"' not in cols
    heads = re.findall(r'<th scope="col">(.*?)</th>', cols)
    assert shas["wide"] in heads[0] and shas["tall"] in heads[1]
    paint = _section(html, "paint")  # one axis: the input and its mask before the row
    assert paint.index('data-role="image"') < paint.index('data-role="mask"') < paint.index('class="frame"')
    assert f'inputs/{shas["mask"]}.png' in paint
    assert paint.count('class="frame input-frame"') == 2  # once for the row, not once per image
    assert len(list((index.parent / "thumbs" / "inputs").iterdir())) == 3


@pytest.fixture(scope="module")
def page(sweep):
    browser_support.require_browser()
    index, _ = sweep
    with browser_support.launch() as browser:
        pg, log = browser_support.open_page(browser)
        pg.goto(index.as_uri())
        pg.wait_for_load_state("load")
        yield pg, log
        pg.context.close()


def test_inputs_load_at_true_proportions_and_enlarge_on_hover(page, sweep):
    pg, log = page
    _, shas = sweep
    pg.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    imgs = pg.locator(".input-frame img")
    assert imgs.count() == 2 + 2 + 2  # rows: 2 rows; cols: 2 columns; paint: image + mask
    broken = pg.evaluate("""() => Array.from(document.querySelectorAll(".input-frame img"))
        .filter(i => !(i.complete && i.naturalWidth > 0)).length""")
    assert broken == 0 and log.errors == [] and log.failed == [] and log.blocked == []
    tall = pg.locator(f'#exp-rows .input-frame a[href$="{shas["tall"]}.jpg"] img')
    tall.scroll_into_view_if_needed()
    pg.mouse.move(0, 0)
    before = tall.bounding_box()
    assert abs(before["width"] / before["height"] - 0.5) < 0.05  # a 32x64 input drawn tall, not squashed
    tall.hover()
    pg.wait_for_function("""(sel) => document.querySelector(sel).getBoundingClientRect().width > %f * 1.5"""
                         % before["width"], arg=f'#exp-rows .input-frame a[href$="{shas["tall"]}.jpg"] img')
    pg.mouse.move(0, 0)
