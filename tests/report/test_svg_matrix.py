"""The seed-diversity heat map stays legible: row labels fit the left margin, column heads do not overlap,
values on dark cells are light, and the chart says which row it is."""

import re
import xml.etree.ElementTree as ET

from zturbo.report import svg

CHAR_W = 6.0  # an upper bound for a 10 px sans-serif character
SEEDS = ["seed 0", "seed 7", "seed 42", "seed 123", "seed 777", "seed 2024", "seed 88888", "seed 1234567"]


def _parse(text):
    return ET.fromstring(text.replace('xmlns="http://www.w3.org/2000/svg"', ""))


def _m(n):
    return [[0.0 if i == j else 0.9 for j in range(n)] for i in range(n)]


def test_matrix_labels_fit_and_do_not_overlap():
    root = _parse(svg.matrix("portrait: pairwise 1 - SSIM", SEEDS, _m(len(SEEDS))))
    rects = root.findall("rect")
    left = min(float(r.get("x")) for r in rects)
    cell = float(rects[0].get("width")) + 1
    ticks = root.findall("text[@class='tick']")
    rows = [t for t in ticks if t.get("text-anchor") == "end"]
    heads = [t for t in ticks if t not in rows]
    assert [t.text for t in rows] == SEEDS
    assert left >= max(len(t.text) for t in rows) * CHAR_W + 4  # row labels are not cut off at the left
    for t in heads:
        upright = "rotate(-90" in (t.get("transform") or "")
        assert upright or len(t.text) * CHAR_W <= cell  # a head wider than its cell is turned upright
    width = float(root.get("width"))
    assert width >= left + len(SEEDS) * cell


def test_matrix_shows_its_title_and_light_text_on_dark_cells():
    text = svg.matrix("landscape: pairwise 1 - SSIM", ["a", "b"], [[0.0, 0.9], [0.9, 0.0]])
    root = _parse(text)
    shown = [t.text for t in root.findall("text")]
    assert "landscape: pairwise 1 - SSIM" in shown
    cells = root.findall("text[@class]")
    dark = [t for t in cells if "cell" in t.get("class").split() and t.text == "0.90"]
    light = [t for t in cells if "cell" in t.get("class").split() and t.text == "0.00"]
    assert dark and all("dark" in t.get("class").split() for t in dark)
    assert light and not any("dark" in t.get("class").split() for t in light)
    assert re.search(r"svg\.chart \.cell\.dark\s*\{[^}]*fill:\s*#fff", _css())


def _css():
    from pathlib import Path

    import zturbo.report

    return (Path(zturbo.report.__file__).parent / "static" / "report.css").read_text()
