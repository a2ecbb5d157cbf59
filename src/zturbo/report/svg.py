"""Small inline SVG charts (no JS, no library): a line chart, a scatter plot and a matrix.
Sized in CSS pixels; colours come from the page's CSS variables so the charts follow the theme."""

from __future__ import annotations

import math
import os
from html import escape

W, H = 300, 176
PAD_L, PAD_R, PAD_T, PAD_B = 48, 10, 38, 30  # the top margin holds the visible title and the legend
COLOURS = ("var(--c1)", "var(--c2)", "var(--c3)", "var(--c4)", "var(--c5)", "var(--c6)", "var(--c7)")


def fmt(v: float | None, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    if isinstance(v, float) and (abs(v) >= 10000 or (0 < abs(v) < 1e-3)):
        return f"{v:.2e}"
    return f"{v:.{digits}g}" if isinstance(v, float) else str(v)


def tick(v: float | None) -> str:
    """fmt() for an axis: a short exponent ("3.04e4", "9.4e-4") so the number fits the chart's margin."""
    s = fmt(v)
    if "e" not in s:
        return s
    mant, exp = s.split("e")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return f"{mant}e{int(exp)}"


def tick_pair(lo: float, hi: float) -> tuple[str, str]:
    """The two ends of an axis, with digits added until they read differently ("0.153" .. "0.1535")."""
    a, b = tick(lo), tick(hi)
    for digits in (4, 5, 6):
        if a != b or lo == hi:
            break
        a, b = (tick(float(f"{v:.{digits}g}")) if "e" in tick(v) else f"{v:.{digits}g}" for v in (lo, hi))
    return a, b


def _finite(values):
    return [v for v in values if v is not None and math.isfinite(v)]


def _scale(lo: float, hi: float, a: float, b: float):
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    return lambda v: a + (v - lo) * (b - a) / (hi - lo)


def _frame(title: str, y_lo: float, y_hi: float, x_label: str) -> list[str]:
    """Axes, the visible title, and the y axis's ends; an axis that does not start at zero says so."""
    lo_text, hi_text = tick_pair(y_lo, y_hi)
    out = [
        f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-label="{escape(title)}">',
        f'<title>{escape(title)}</title>',
        f'<text class="chart-title" x="6" y="14">{escape(title)}</text>',
        f'<line class="axis" x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}"/>',
        f'<line class="axis" x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}"/>',
        f'<text class="tick" x="{PAD_L - 4}" y="{PAD_T + 4}" text-anchor="end">{escape(hi_text)}</text>',
        f'<text class="tick" x="{PAD_L - 4}" y="{H - PAD_B}" text-anchor="end">{escape(lo_text)}</text>',
        f'<text class="label" x="{W - PAD_R}" y="{H - 3}" text-anchor="end">{escape(x_label)}</text>',
    ]
    if y_lo != 0:  # a zoomed axis: a break mark on it and a note, so small differences do not look large
        y = H - PAD_B - 6
        out += [f'<path class="axis-break" d="M{PAD_L - 4},{y + 3} l8,-3 M{PAD_L - 4},{y + 7} l8,-3"/>',
                f'<text class="axis-note" x="3" y="{H - 3}">y axis from {escape(lo_text)}, not 0</text>']
    return out


def line_chart(title: str, x_labels: list[str], series: dict[str, list[float | None]], x_label: str = "") -> str:
    """One line per series over categorical x positions; gaps where a value is None or infinite."""
    values = _finite([v for s in series.values() for v in s])
    if not values or not x_labels:
        return ""
    lo, hi = min(values), max(values)
    sy = _scale(lo, hi, H - PAD_B, PAD_T)
    n = len(x_labels)
    sx = (lambda i: (PAD_L + W - PAD_R) / 2) if n == 1 else _scale(0, n - 1, PAD_L + 8, W - PAD_R - 8)
    out = _frame(title, lo, hi, x_label)
    for i, lab in enumerate(x_labels):
        out.append(f'<text class="tick" x="{sx(i):.1f}" y="{H - PAD_B + 12}" text-anchor="middle">{escape(lab)}</text>')
    for k, (name, ys) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        pts = [(sx(i), sy(v)) for i, v in enumerate(ys) if v is not None and math.isfinite(v)]
        if len(pts) > 1:
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{d}"/>')
        out += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>' for x, y in pts]
        if len(series) > 1:
            out.append(f'<text class="legend" x="{PAD_L + 6 + 90 * k}" y="{PAD_T - 8}" fill="{colour}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def scatter(title: str, points: list[tuple[float, float, str, str]], x_label: str, y_label: str) -> str:
    """Points (x, y, tooltip, group) on linear axes from zero: a colour per group, named in a legend
    below the plot (the chart grows a row per three groups)."""
    pts = [p for p in points if p[0] is not None and p[1] is not None]
    if not pts:
        return ""
    groups = list(dict.fromkeys(p[3] for p in pts))  # short names (an experiment's name, not its title)
    colour = {g: COLOURS[i % len(COLOURS)] for i, g in enumerate(groups)}
    x_hi, y_hi = max(p[0] for p in pts), max(p[1] for p in pts)
    sx, sy = _scale(0, x_hi, PAD_L + 4, W - PAD_R), _scale(0, y_hi, H - PAD_B, PAD_T)
    legend_rows = (len(groups) + 2) // 3 if len(groups) > 1 else 0
    out = _frame(title, 0, y_hi, x_label)
    h = H + 14 * legend_rows
    out[0] = out[0].replace(f'viewBox="0 0 {W} {H}" width="{W}" height="{H}"', f'viewBox="0 0 {W} {h}" width="{W}" height="{h}"')
    out.append(f'<text class="tick" x="{PAD_L + 4}" y="{H - PAD_B + 12}">0</text>')
    out.append(f'<text class="tick" x="{W - PAD_R}" y="{H - PAD_B + 12}" text-anchor="end">{escape(tick(x_hi))}</text>')
    out.append(f'<text class="label" x="{PAD_L + 4}" y="{PAD_T - 8}">{escape(y_label)}</text>')
    for x, y, tip, g in pts:
        out.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour[g]}"><title>{escape(tip)}</title></circle>')
    if legend_rows:
        for i, g in enumerate(groups):
            lx, ly = 6 + (i % 3) * 98, H + 10 + 14 * (i // 3)
            out.append(f'<circle cx="{lx + 4}" cy="{ly - 3}" r="4" fill="{colour[g]}"/>'
                       f'<text class="legend-item" x="{lx + 11}" y="{ly}">{escape(g[:16])}</text>')
    out.append("</svg>")
    return "".join(out)


def matrix(title: str, labels: list[str], m: list[list[float]]) -> str:
    """A heat map of a square matrix with values in 0..1 (darker = larger), values printed."""
    n = len(labels)
    if n == 0:
        return ""
    char_w = 6.0  # a 10 px sans-serif character, at most
    cell = max(18, min(36, 220 // n))
    # column heads: the labels less their shared words ("seed 0", "seed 7" -> "0", "7"), upright if too wide
    prefix = os.path.commonprefix(labels)
    prefix = prefix[: prefix.rfind(" ") + 1]
    heads = [lab[len(prefix):] or lab for lab in labels]
    head_w = max(len(h) for h in heads) * char_w
    upright = head_w > cell - 2
    left = int(max(len(lab) for lab in labels) * char_w) + 8
    top = 16 + (int(head_w) + 6 if upright else 14)
    size_w = max(left + n * cell + 4, int(len(title) * char_w) + 8)
    size_h = top + n * cell + 4
    out = [f'<svg class="chart matrix" viewBox="0 0 {size_w} {size_h}" width="{size_w}" height="{size_h}" role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
           f'<text class="label" x="4" y="12">{escape(title)}</text>']
    for i, lab in enumerate(labels):
        out.append(f'<text class="tick" x="{left - 4}" y="{top + i * cell + cell / 2 + 3}" text-anchor="end">{escape(lab)}</text>')
        x = left + i * cell + cell / 2
        if upright:
            out.append(f'<text class="tick" transform="translate({x + 3},{top - 4}) rotate(-90)">{escape(heads[i])}</text>')
        else:
            out.append(f'<text class="tick" x="{x}" y="{top - 4}" text-anchor="middle">{escape(heads[i])}</text>')
        for j in range(n):
            v = max(0.0, min(1.0, m[i][j]))
            out.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" height="{cell - 1}" '
                f'fill="var(--c1)" fill-opacity="{0.08 + 0.9 * v:.2f}"><title>{escape(labels[i])} vs {escape(labels[j])}: {v:.3f}</title></rect>'
            )
            if cell >= 26:
                cls = "cell dark" if v > 0.5 else "cell"
                out.append(f'<text class="{cls}" x="{left + j * cell + cell / 2}" y="{top + i * cell + cell / 2 + 3}" text-anchor="middle">{v:.2f}</text>')
    out.append("</svg>")
    return "".join(out)
