"""Chart axis numbers fit the chart's left margin (the resolution chart's '3.04e+04' was cut to '04e+04')."""

import xml.etree.ElementTree as ET

import pytest

from zturbo.report import svg

DIGIT_W = 6.4  # a 10 px DejaVu Sans digit


@pytest.mark.parametrize("lo,hi", [(25900.0, 30400.0), (0.00012, 0.00094), (0.153, 0.1535), (1.0, 7.2)])
def test_y_ticks_fit_the_left_margin(lo, hi):
    root = ET.fromstring(svg.line_chart("t", ["a", "b"], {"s": [lo, hi]}, "x"))
    ends = [t for t in root.iter() if t.tag.endswith("text") and t.get("text-anchor") == "end"]
    assert len(ends) == 2
    for t in ends:
        assert len(t.text) * DIGIT_W <= float(t.get("x")), t.text


def test_tick_keeps_the_value():
    assert float(svg.tick(30400.0)) == pytest.approx(30400.0, rel=0.01)
    assert float(svg.tick(0.00094)) == pytest.approx(0.00094, rel=0.01)
    assert svg.tick(0.153) == "0.153" and svg.tick(7.2) == "7.2"
