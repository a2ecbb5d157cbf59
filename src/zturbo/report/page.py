"""The report page as HTML: the article's layout for each experiment, the comparison slider, the
measurements and the cost. Static markup from Python; report.js adds hover, lightbox and slider."""

from __future__ import annotations

import json
import math
from html import escape
from string import Template
from importlib import resources
from typing import Any

from .. import defaults
from . import svg
from .analysis import Analysis, kind, quant_groups
from .learned import LearnedMetric
from .sweepdir import Experiment, Item, Sweep

# CSS pixel sizes of the frames, per layout (presentation only)
ROW_H = 180  # steps, guidance: a row of equal-height frames
SEED_BOX = 270  # seeds: each frame's long side; report.css sets four to a row (the article: two rows of four)
QUANT_H = 260
GRID_H = 130
ASPECT_AREA = 175 * 175  # aspect: every frame drawn with this area, at its true proportions
RES_MAX_SIDE = 560  # resolution: the largest frame's long side; the others keep area proportional to pixels
CMP_MAX_W, CMP_MAX_H = 640, 520  # the comparison slider's box
HOVER = {"aspect": 1.3}  # hover magnification by layout ("enlarge slightly" for aspect); default below
HOVER_DEFAULT = 1.8


def _display_size(layout: str, w: int, h: int, res_scale: float) -> tuple[float, float]:
    if layout == "aspect":
        r = w / h
        return math.sqrt(ASPECT_AREA * r), math.sqrt(ASPECT_AREA / r)
    if layout == "resolution":
        return w * res_scale, h * res_scale
    if layout == "seeds":
        return SEED_BOX * w / max(w, h), SEED_BOX * h / max(w, h)
    height = {"quant": QUANT_H, "grid": GRID_H}.get(layout, ROW_H)
    return height * w / h, height


def frame(item: Item, d: dict[str, Any], layout: str, res_scale: float, exp: str) -> str:
    v = d.get("views", {}).get(exp, {})
    w, h = item.size if not d.get("w") else (d["w"], d["h"])
    w, h = w or 64, h or 64
    dw, dh = _display_size(layout, w, h, res_scale)
    label = escape(v.get("label") or item.id)
    caption = escape(v.get("caption") or "")
    flag = f'<span class="flag">⚠ {escape(v["flag"])}</span>' if v.get("flag") else ""
    if item.ok and d.get("thumb"):
        body = (f'<button class="open" type="button" data-id="{escape(item.id)}" data-exp="{escape(exp)}" title="{label}: click for full size">'
                f'<img src="{escape(d["thumb"])}" alt="{label}" width="{dw:.0f}" height="{dh:.0f}" decoding="async"></button>')
        cls = "frame"
    else:
        what = "failed" if item.status == "failed" else "not generated"
        err = escape(item.error or "")
        body = (f'<button class="open missing" type="button" data-id="{escape(item.id)}" data-exp="{escape(exp)}" '
                f'style="width:{dw:.0f}px;height:{dh:.0f}px" title="{err}"><b>{what}</b><small>{err}</small></button>')
        cls = f"frame {item.status}"
    return (f'<figure class="{cls}" data-id="{escape(item.id)}" style="width:{max(dw, 60):.0f}px">{body}'
            f'<figcaption><span class="lab">{label}</span><span class="num">{caption}</span>{flag}</figcaption></figure>')


def _row(items, data, layout, res_scale, exp: str, title: str | None = None) -> str:
    head = f'<h4 class="row-title">{escape(title)}</h4>' if title else ""
    return head + f'<div class="frames layout-{layout}">' + "".join(frame(it, data[it.id], layout, res_scale, exp) for it in items) + "</div>"


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _grid(exp: Experiment, data, res_scale) -> str:
    axes = exp.axes
    if len(axes) < 2:
        return _row(exp.items, data, "grid", res_scale, exp.name)
    (xk, xv), (yk, yv) = (axes[0]["key"], axes[0]["values"]), (axes[1]["key"], axes[1]["values"])
    zs = [(axes[2]["key"], z) for z in axes[2]["values"]] if len(axes) > 2 else [(None, None)]
    cells = {}
    for it in exp.items:
        cells[(_key(it.axes.get(xk)), _key(it.axes.get(yk)), _key(it.axes.get(zs[0][0])) if zs[0][0] else None)] = it
    out = []
    for zk, z in zs:
        if zk:
            out.append(f'<h4 class="row-title">{escape(zk)} = {escape(str(z))}</h4>')
        rows = [f'<tr><th class="corner">{escape(yk)} ↓ · {escape(xk)} →</th>'
                + "".join(f'<th scope="col">{escape(str(x))}</th>' for x in xv) + "</tr>"]
        for y in yv:
            tds = []
            for x in xv:
                it = cells.get((_key(x), _key(y), _key(z) if zk else None))
                tds.append(f"<td>{frame(it, data[it.id], 'grid', res_scale, exp.name) if it else '<span class=empty>—</span>'}</td>")
            rows.append(f'<tr><th scope="row">{escape(str(y))}</th>{"".join(tds)}</tr>')
        out.append(f'<table class="xy-grid">{"".join(rows)}</table>')
    return "".join(out)


def layout_html(exp: Experiment, data: dict) -> str:
    layout = exp.layout if exp.layout in ("row", "seeds", "aspect", "resolution", "quant", "grid") else "row"
    sides = [max(data[it.id].get("w") or it.size[0], data[it.id].get("h") or it.size[1]) for it in exp.items]
    res_scale = RES_MAX_SIDE / max([s for s in sides if s] or [RES_MAX_SIDE])  # one scale: area ∝ pixels
    if layout == "grid":
        return _grid(exp, data, res_scale)
    if layout == "quant":
        groups = quant_groups(exp)
        if len(groups) > 1:
            return "".join(_row(its, data, layout, res_scale, exp.name, title) for title, its in groups.items())
    if layout in ("seeds", "resolution") and any(it.row for it in exp.items):
        groups = {}
        for it in exp.items:
            groups.setdefault(it.row or "other", []).append(it)
        out = []
        for row, its in groups.items():
            sizes = sorted({f"{it.size[0]}×{it.size[1]}" for it in its})
            title = f"{row.capitalize()} · {', '.join(sizes)}" if layout == "seeds" else row.capitalize()
            out.append(_row(its, data, layout, res_scale, exp.name, title))
        return "".join(out)
    return _row(exp.items, data, layout, res_scale, exp.name)


def slider_html(exp: Experiment, data: dict) -> str:
    ok = [it for it in exp.items if it.ok and data[it.id].get("full")]
    if len(ok) < 2:
        return ""
    def text(it):
        v = data[it.id]["views"][exp.name]
        return v["label"] + (f" · {v['group']}" if v.get("group") else "")

    options = "".join(f'<option value="{escape(it.id)}">{escape(text(it))}</option>' for it in ok)
    first = data[ok[0].id]
    shape = first.get("w", 1) / first.get("h", 1)  # compare like with like: the last frame of the same shape
    b = next((it for it in reversed(ok[1:]) if abs(data[it.id].get("w", 1) / data[it.id].get("h", 1) - shape) < 0.02), ok[-1])
    if kind(exp) == "quant":  # compare within the first recipe: bf16 against its most compressed re-make
        first_group = next(iter(quant_groups(exp).values()))
        b = next((it for it in reversed(first_group) if it in ok and it is not ok[0]), b)
    cmp_w = min(CMP_MAX_W, CMP_MAX_H * first.get("w", 1) / first.get("h", 1))  # tall frames fit the screen
    zoom_name = "head detail" if kind(exp) in ("steps", "guidance") else "zoomed region"
    mode_default = "zoom" if kind(exp) in ("steps", "guidance") else "full"
    name = escape(exp.name)
    return f"""
<div class="compare" data-exp="{name}" data-zoom="{defaults.REPORT_ZOOM:g}" data-mode="{mode_default}" data-a="{escape(ok[0].id)}" data-b="{escape(b.id)}">
  <div class="cmp-bar">
    <strong>Slide to compare</strong>
    <label>left <select class="pick" data-side="a" aria-label="left frame">{options}</select></label>
    <label>right <select class="pick" data-side="b" aria-label="right frame">{options}</select></label>
    <label><input type="radio" name="mode-{name}" value="full"{" checked" if mode_default == "full" else ""}> full frame</label>
    <label><input type="radio" name="mode-{name}" value="zoom"{" checked" if mode_default == "zoom" else ""}> {zoom_name} ({defaults.REPORT_ZOOM:g}×)</label>
  </div>
  <div class="cmp-wrap">
    <div class="cmp" style="aspect-ratio:{first.get('w', 1)}/{first.get('h', 1)};width:min(100%,{cmp_w:.0f}px)">
      <div class="side side-b"><div class="inner"><img class="img-b" alt="right frame"></div><span class="tag tag-b"></span></div>
      <div class="side side-a"><div class="inner"><img class="img-a" alt="left frame"></div><span class="tag tag-a"></span></div>
      <div class="divider" role="slider" tabindex="0" aria-label="divider position" aria-valuemin="0" aria-valuemax="100" aria-valuenow="50"><span class="grip"></span></div>
    </div>
    <div class="minimap" title="drag to move the zoomed region">
      <div class="mini-frame"><img class="mini-img" alt="where the zoomed region is"><div class="region"></div></div>
      <small>drag the box to move the region</small>
    </div>
  </div>
  <p class="hint">Drag across the frame to move the divider. The two pickers can't show the same frame.</p>
</div>"""


def metrics_html(a: Analysis) -> str:
    if not (a.rows or a.charts):
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in a.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in a.rows)
    charts = "".join(c for c in a.charts if c)
    return (f'<div class="metrics"><p class="summary">{escape(a.summary)}</p><div class="charts">{charts}</div>'
            f'<table class="numbers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')


def cost_html(sweep: Sweep, data: dict) -> str:
    pts_s, pts_m, rows = [], [], []
    for exp in sweep.experiments:
        secs = []
        for it in exp.items:
            rec, d = it.record, data[it.id]
            if not it.ok:
                continue
            mp = it.size[0] * it.size[1] / defaults.MEGAPIXEL
            tip = f"{d['views'][exp.name]['label']} ({exp.name}): {mp:.2f} MP"
            if rec.get("seconds") is not None:
                pts_s.append((mp, float(rec["seconds"]), f"{tip}, {rec['seconds']:.2f} s"))
                secs.append((float(rec["seconds"]), mp))
            if rec.get("peak_memory_gb") is not None:
                pts_m.append((mp, float(rec["peak_memory_gb"]), f"{tip}, {rec['peak_memory_gb']:.2f} GB"))
        if secs:
            total, mps = sum(s for s, _ in secs), sum(m for _, m in secs)
            rows.append(f"<tr><td>{escape(exp.title)}</td><td>{len(secs)}</td><td>{total:.2f}</td>"
                        f"<td>{total / len(secs):.3f}</td><td>{total / mps:.3f}</td></tr>")
    charts = svg.scatter("seconds per image against megapixels", pts_s, "megapixels", "seconds")
    charts += svg.scatter("peak memory against megapixels", pts_m, "megapixels", "peak GB") if pts_m else ""
    note = "" if pts_m else '<p class="note">Peak GPU memory was not measured (a CPU run records none).</p>'
    table = ('<table class="numbers"><thead><tr><th>experiment</th><th>images</th><th>seconds</th>'
             f'<th>s / image</th><th>s / MP</th></tr></thead><tbody>{"".join(rows)}</tbody></table>') if rows else ""
    return f'<div class="metrics"><div class="charts">{charts}</div>{note}{table}</div>'


def render(sweep: Sweep, analyses: dict[str, Analysis], data: dict, learned: list[LearnedMetric],
           trace: str | None, built: str) -> str:
    counts = {"ok": 0, "failed": 0, "missing": 0}
    for it in sweep.items.values():
        counts[it.status] = counts.get(it.status, 0) + 1
    models = sorted({(it.record.get("model") or {}).get("label") or (it.record.get("model") or {}).get("model") or ""
                     for it in sweep.items.values() if isinstance(it.record.get("model"), dict)} - {""})
    devices = sorted({str(it.record.get("device")) for it in sweep.items.values() if it.record.get("device")})
    nav = "".join(f'<a href="#exp-{escape(e.name)}">{escape(e.title)}</a>' for e in sweep.experiments)
    nav += '<a href="#cost">Cost</a>' + (f'<a class="trace" href="{escape(trace)}">Trace: under the hood</a>' if trace else "")
    sections = []
    for exp in sweep.experiments:
        hover = HOVER.get(exp.layout, HOVER_DEFAULT)
        n_ok = sum(it.ok for it in exp.items)
        sections.append(
            f'<section class="experiment" id="exp-{escape(exp.name)}" style="--hover:{hover}">'
            f'<h2>{escape(exp.title)}</h2><p class="knob">knob: <code>{escape(exp.knob)}</code> · '
            f'{n_ok} of {len(exp.items)} frames · hover a frame to enlarge it, click for the full image and its recipe</p>'
            f'{layout_html(exp, data)}{slider_html(exp, data)}{metrics_html(analyses[exp.name])}</section>'
        )
    learned_html = "".join(f'<li><b>{escape(m.name)}</b>: {escape(m.note)}</li>' for m in learned)
    blob = json.dumps({"items": data}, ensure_ascii=False).replace("<", "\\u003c")
    fields = {
        "title": escape(f"zturbo field guide · {sweep.root.name}"),
        "heading": escape(sweep.root.name),
        "prompt": escape(sweep.prompt),
        "step_mapping": escape(sweep.step_mapping),
        "models": escape(", ".join(models) or "unknown"),
        "devices": escape(", ".join(devices) or "unknown"),
        "counts": escape(f"{counts['ok']} ok · {counts['failed']} failed · {counts['missing']} not generated"),
        "learned": learned_html,
        "trace": f'<p>Pipeline trace: <a class="trace" href="{escape(trace)}">trace.html</a></p>' if trace else "",
        "nav": nav,
        "sections": "".join(sections),
        "cost": cost_html(sweep, data),
        "data": blob,
        "built": escape(built),
    }
    template = (resources.files("zturbo.report") / "templates" / "index.html").read_text(encoding="utf-8")
    return Template(template).substitute(fields)
