"""Chart axis numbers fit the chart's left margin (the resolution chart's '3.04e+04' was cut to '04e+04')."""

import xml.etree.ElementTree as ET

import pytest

from zturbo.report import svg

DIGIT_W = 6.4  # a 10 px DejaVu Sans digit


@pytest.mark.parametrize("lo,hi", [(25900.0, 30400.0), (0.00012, 0.00094), (0.153, 0.1535), (1.0, 7.2)])
def test_y_ticks_fit_the_left_margin(lo, hi):
    root = ET.fromstring(svg.line_chart("t", ["a", "b"], {"s": [lo, hi]}, "x"))
    ends = [t for t in root.iter() if t.tag.endswith("text") and t.get("text-anchor") == "end" and t.get("class") == "tick"]
    assert len(ends) == 2
    for t in ends:
        assert len(t.text) * DIGIT_W <= float(t.get("x")), t.text


def test_tick_keeps_the_value():
    assert float(svg.tick(30400.0)) == pytest.approx(30400.0, rel=0.01)
    assert float(svg.tick(0.00094)) == pytest.approx(0.00094, rel=0.01)
    assert svg.tick(0.153) == "0.153" and svg.tick(7.2) == "7.2"


def _texts(svg_text, cls):
    root = ET.fromstring(svg_text)
    return [t.text for t in root.iter() if t.tag.endswith("text") and t.get("class") == cls]


def test_every_chart_shows_its_title_and_a_zoomed_axis_says_so():
    chart = svg.line_chart("RMS contrast by guidance", ["0", "1"], {"c": [0.153, 0.1535]}, "guidance")
    assert _texts(chart, "chart-title") == ["RMS contrast by guidance"]
    lo, hi = sorted(_texts(chart, "tick")[:2], key=float)  # both ends, and they read differently
    assert lo != hi and float(lo) == pytest.approx(0.153) and float(hi) == pytest.approx(0.1535)
    assert _texts(chart, "axis-note") == [f"y axis from {lo}, not 0"]
    from_zero = svg.line_chart("t", ["0", "1"], {"c": [0.0, 3.0]}, "x")
    assert _texts(from_zero, "axis-note") == []
    scatter = svg.scatter("seconds", [(1, 2, "a", "Steps"), (2, 3, "b", "Quant")], "MP", "s")
    assert _texts(scatter, "chart-title") == ["seconds"] and _texts(scatter, "legend-item") == ["Steps", "Quant"]
