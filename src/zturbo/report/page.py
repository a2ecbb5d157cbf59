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
from .analysis import Analysis, fmt_value, kind, quant_groups
from .learned import LearnedMetric
from .sweepdir import Experiment, Item, Sweep

# CSS pixel sizes of the frames, per layout (presentation only)
ROW_H = 180  # steps, guidance: a row of equal-height frames
SEED_BOX = 270  # seeds: each frame's long side; report.css sets four to a row (the article: two rows of four)
QUANT_H = 260
GRID_H = 130
ASPECT_AREA = 175 * 175  # aspect: every frame drawn with this area, at its true proportions
RES_MAX_SIDE = 560  # resolution: the largest frame's long side; the others keep area proportional to pixels
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


def _wh(item: Item, d: dict[str, Any]) -> tuple[int, int]:
    w, h = item.size if not d.get("w") else (d["w"], d["h"])
    return w or 64, h or 64


def widest(layout: str, items, data, res_scale: float) -> float:
    """The widest frame of a layout, in CSS px: the reference every frame shrinks against on a narrow screen."""
    return max([max(_display_size(layout, *_wh(it, data[it.id]), res_scale)[0], 60) for it in items] or [1])


def frame(item: Item, d: dict[str, Any], layout: str, res_scale: float, exp: str, ref_w: float | None = None) -> str:
    """One frame at its layout's size. With ref_w (the layout's widest frame) its width is also capped
    at its share of the row's width: on a narrow screen every frame shrinks by the same factor, so true
    proportions and equal areas hold at any width."""
    v = d.get("views", {}).get(exp, {})
    w, h = _wh(item, d)
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
                f'style="width:{dw:.0f}px;aspect-ratio:{dw:.0f}/{dh:.0f}" title="{err}"><b>{what}</b><small>{err}</small></button>')
        cls = f"frame {item.status}"
    fw = max(dw, 60)
    width = f"min({fw:.0f}px,{100 * fw / ref_w:.2f}%)" if ref_w else f"{fw:.0f}px"
    return (f'<figure class="{cls}" data-id="{escape(item.id)}" style="width:{width}">{body}'
            f'<figcaption><span class="lab">{label}</span><span class="num">{caption}</span>{flag}</figcaption></figure>')


def _row(items, data, layout, res_scale, exp: str, title: str | None = None, ref_w: float | None = None) -> str:
    head = f'<h4 class="row-title">{escape(title)}</h4>' if title else ""
    if layout == "seeds":  # its grid of four columns shrinks the frames itself (report.css)
        ref_w = None
    elif ref_w is None:
        ref_w = widest(layout, items, data, res_scale)
    return head + f'<div class="frames layout-{layout}">' + "".join(frame(it, data[it.id], layout, res_scale, exp, ref_w) for it in items) + "</div>"


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)


def _inputs_of(items, data) -> list[tuple[dict[str, Any], ...]]:
    """The distinct (input image, mask) pairs these items were made from, in order (none: text-to-image)."""
    seen: dict[tuple[str, ...], tuple[dict[str, Any], ...]] = {}
    for it in items:
        entries = tuple(data[it.id].get("inputs") or ())
        if entries:
            seen.setdefault(tuple(e["key"] for e in entries), entries)
    return list(seen.values())


def input_html(entries: tuple[dict[str, Any], ...]) -> str:
    """The input image (and mask) an image-to-image row starts from: thumbnails at the grid's frame height
    and their true proportions, enlarged on hover like the frames; a click opens the file."""
    out = []
    for e in entries:
        dw = GRID_H * e["w"] / e["h"]
        name = "input image" if e["role"] == "image" else "mask"
        out.append(f'<figure class="frame input-frame" data-role="{escape(e["role"])}" style="width:{max(dw, 60):.0f}px">'
                   f'<a class="open" href="{escape(e["full"])}" title="{name}: click for full size">'
                   f'<img src="{escape(e["thumb"])}" alt="{name}" width="{dw:.0f}" height="{GRID_H}" decoding="async"></a>'
                   f'<figcaption><span class="lab">{name}</span><span class="num">{e["w"]}×{e["h"]}</span></figcaption></figure>')
    return f'<div class="inputs">{"".join(out)}</div>'


def _input_row(items, data, res_scale, exp: str) -> str:
    """A one-axis grid: one row per input, its input image (and mask) first."""
    groups: dict[tuple[str, ...], list] = {}
    for it in items:
        groups.setdefault(tuple(e["key"] for e in data[it.id].get("inputs") or ()), []).append(it)
    ref_w = widest("grid", items, data, res_scale)
    out = []
    for its in groups.values():
        (entries,) = _inputs_of(its, data) or [()]
        frames = "".join(frame(it, data[it.id], "grid", res_scale, exp, ref_w) for it in its)
        out.append(f'<div class="frames layout-grid with-input">{input_html(entries) if entries else ""}{frames}</div>')
    return "".join(out)


def _grid(exp: Experiment, data, res_scale) -> str:
    axes = exp.axes
    with_inputs = bool(_inputs_of(exp.items, data))
    if len(axes) < 2:
        if with_inputs:
            return _input_row(exp.items, data, res_scale, exp.name)
        return _row(exp.items, data, "grid", res_scale, exp.name)
    (xk, xv), (yk, yv) = (axes[0]["key"], axes[0]["values"]), (axes[1]["key"], axes[1]["values"])
    zs = [(axes[2]["key"], z) for z in axes[2]["values"]] if len(axes) > 2 else [(None, None)]
    cells = {}
    for it in exp.items:
        cells[(_key(it.axes.get(xk)), _key(it.axes.get(yk)), _key(it.axes.get(zs[0][0])) if zs[0][0] else None)] = it
    out = []
    for zk, z in zs:
        if zk:
            out.append(f'<h4 class="row-title">{escape(zk)} = {escape(fmt_value(zk, z))}</h4>')
        at = lambda x, y: cells.get((_key(x), _key(y), _key(z) if zk else None))  # noqa: E731
        col = lambda x: [it for y in yv if (it := at(x, y))]  # noqa: E731
        row = lambda y: [it for x in xv if (it := at(x, y))]  # noqa: E731
        # an image-to-image grid shows its input beside each row, or above each column when x varies it
        by_col = with_inputs and all(len(_inputs_of(col(x), data)) <= 1 for x in xv) \
            and any(len(_inputs_of(row(y), data)) > 1 for y in yv)
        by_row = with_inputs and not by_col
        inputs = lambda its: "".join(input_html(e) for e in _inputs_of(its, data))  # noqa: E731
        rows = [f'<tr><th class="corner">{escape(yk)} ↓ · {escape(xk)} →</th>' + ("<th>input</th>" if by_row else "")
                + "".join(f'<th scope="col">{escape(fmt_value(xk, x))}{inputs(col(x)) if by_col else ""}</th>' for x in xv)
                + "</tr>"]
        for y in yv:
            tds = [f'<td class="input-cell">{inputs(row(y))}</td>'] if by_row else []
            for x in xv:
                it = at(x, y)
                tds.append(f"<td>{frame(it, data[it.id], 'grid', res_scale, exp.name) if it else '<span class=empty>—</span>'}</td>")
            rows.append(f'<tr><th scope="row">{escape(fmt_value(yk, y))}</th>{"".join(tds)}</tr>')
        out.append(f'<div class="scroll"><table class="xy-grid">{"".join(rows)}</table></div>')
    return "".join(out)


def layout_html(exp: Experiment, data: dict) -> str:
    layout = exp.layout if exp.layout in ("row", "seeds", "aspect", "resolution", "quant", "grid") else "row"
    sides = [max(data[it.id].get("w") or it.size[0], data[it.id].get("h") or it.size[1]) for it in exp.items]
    res_scale = RES_MAX_SIDE / max([s for s in sides if s] or [RES_MAX_SIDE])  # one scale: area ∝ pixels
    if layout == "grid":
        return _grid(exp, data, res_scale)
    if layout == "quant":
        groups = quant_groups(exp)
        if len(groups) > 1:  # one row per recipe: long, so folded under the slider
            ref_w = widest(layout, exp.items, data, res_scale)
            rows = "".join(_row(its, data, layout, res_scale, exp.name, title, ref_w) for title, its in groups.items())
            return (f'<details class="fold"><summary>All {len(exp.items)} frames, one row per recipe '
                    f'({len(groups)} recipes)</summary>{rows}</details>')
    if layout in ("seeds", "resolution") and any(it.row for it in exp.items):
        groups = {}
        for it in exp.items:
            groups.setdefault(it.row or "other", []).append(it)
        out, ref_w = [], widest(layout, exp.items, data, res_scale)  # one scale for every row
        for row, its in groups.items():
            sizes = sorted({f"{it.size[0]}×{it.size[1]}" for it in its})
            title = f"{row.capitalize()} · {', '.join(sizes)}" if layout == "seeds" else row.capitalize()
            out.append(_row(its, data, layout, res_scale, exp.name, title, ref_w))
        return "".join(out)
    return _row(exp.items, data, layout, res_scale, exp.name)


def slider_groups(exp: Experiment, data: dict) -> tuple[str, list[tuple[str, list[Item]]]]:
    """What the slider compares within: a quant recipe, a seeds row (a seed is not portable across
    shapes), or the whole experiment. Returns (the picker's name, [(group title, frames with an original)])."""
    ok = [it for it in exp.items if it.ok and data[it.id].get("full")]
    if kind(exp) == "quant":
        groups = [(t or "all", [it for it in its if it in ok]) for t, its in quant_groups(exp).items()]
        name = "recipe"
    elif kind(exp) == "seeds" and any(it.row for it in ok):
        rows: dict[str, list[Item]] = {}
        for it in ok:
            rows.setdefault(it.row or "other", []).append(it)
        groups, name = list(rows.items()), "row"
    else:
        groups, name = [("all", ok)], ""
    return name, [(t, its) for t, its in groups if len(its) >= 2]


def _option_text(exp: Experiment, it: Item, data: dict) -> str:
    """A frame's name in the pickers and on the slider's tags: its label, and its orientation and size
    when the experiment has rows (seed 0 exists in portrait and in landscape)."""
    d, v = data[it.id], data[it.id]["views"][exp.name]
    text = v["label"]
    if it.row and it.row not in text:
        text += f" · {it.row} {d.get('w', it.size[0])}×{d.get('h', it.size[1])}"
    return text


def slider_html(exp: Experiment, data: dict) -> str:
    name_of_group, groups = slider_groups(exp, data)
    if not groups:
        return ""
    # JS fills the pickers from this: [[group title, [[id, text], ...]], ...]
    spec = [[title, [[it.id, _option_text(exp, it, data)] for it in its]] for title, its in groups]
    first = groups[0][1]
    shape = lambda it: data[it.id].get("w", 1) / data[it.id].get("h", 1)  # noqa: E731
    # neighbours by default: the next frame of the same shape (steps 1 vs 2, Q8 vs bf16, 21:9 vs 2:1)
    b = next((it for it in first[1:] if abs(shape(it) - shape(first[0])) < 0.02), first[1])
    zoom_name = "head detail" if kind(exp) in ("steps", "guidance") else "zoomed region"
    mode_default = "zoom" if kind(exp) in ("steps", "guidance") else "full"
    name = escape(exp.name)
    group_picker = (f'<label class="group-pick">{escape(name_of_group)} <select class="group" aria-label="{escape(name_of_group)}">'
                    + "".join(f"<option>{escape(t)}</option>" for t, _ in groups) + "</select></label>") if len(groups) > 1 else ""
    side = "precision" if kind(exp) == "quant" else "frame"
    return f"""
<div class="compare" data-exp="{name}" data-zoom="{defaults.REPORT_ZOOM:g}" data-mode="{mode_default}" data-a="{escape(first[0].id)}" data-b="{escape(b.id)}" data-groups="{escape(json.dumps(spec, ensure_ascii=False))}">
  <div class="cmp-bar">
    <strong>Slide to compare</strong>{group_picker}
    <label>left <select class="pick" data-side="a" aria-label="left {side}"></select></label>
    <label>right <select class="pick" data-side="b" aria-label="right {side}"></select></label>
    <span class="modes"><label><input type="radio" name="mode-{name}" value="full"{" checked" if mode_default == "full" else ""}> full frame</label>
    <label><input type="radio" name="mode-{name}" value="zoom"{" checked" if mode_default == "zoom" else ""}> {zoom_name} ({defaults.REPORT_ZOOM:g}×)</label></span>
  </div>
  <div class="cmp-wrap">
    <div class="cmp">
      <div class="side side-b"><div class="inner"><img class="img-b" alt="right frame" draggable="false"></div><span class="tag tag-b"></span></div>
      <div class="side side-a"><div class="inner"><img class="img-a" alt="left frame" draggable="false"></div><span class="tag tag-a"></span></div>
      <div class="divider" role="slider" tabindex="0" aria-label="divider position" aria-valuemin="0" aria-valuemax="100" aria-valuenow="50"><span class="grip"></span></div>
    </div>
    <div class="minimap">
      <div class="mini-frame"><img class="mini-img" alt="where the zoomed region is" draggable="false"><div class="region" tabindex="0" role="group" aria-label="zoomed region: arrow keys move it"></div></div>
      <small>drag the box, or focus it and use the arrow keys</small>
    </div>
  </div>
  <p class="hint">Drag across the frame (or use ←/→, Home, End on the divider). The two pickers can't show the same frame.</p>
  <p class="cmp-missing note" hidden></p>
</div>"""


def _table(head: str, body: str) -> str:
    """A number table in its own horizontal scroller: a wide one never widens the page on a phone."""
    return f'<div class="scroll"><table class="numbers"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def metrics_html(a: Analysis) -> str:
    if not (a.rows or a.charts):
        return ""
    head = "".join(f"<th>{escape(h)}</th>" for h in a.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in a.rows)
    charts = "".join(c for c in a.charts if c)
    return (f'<div class="metrics"><p class="summary">{escape(a.summary)}</p><div class="charts">{charts}</div>'
            f'{_table(head, body)}</div>')


def cost_html(sweep: Sweep, data: dict) -> str:
    """Seconds and memory per image. An image shared by two experiments (quant re-uses the bf16 frames)
    is counted once, under the experiment that made it."""
    pts_s, pts_m, rows, seen = [], [], [], set()
    n_all = total_all = 0.0
    for exp in sweep.experiments:
        secs = []
        for it in exp.items:
            rec, d = it.record, data[it.id]
            if not it.ok or it.id in seen:
                continue
            seen.add(it.id)
            mp = it.size[0] * it.size[1] / defaults.MEGAPIXEL
            tip = f"{d['views'][exp.name]['label']} ({exp.title}): {mp:.2f} MP"
            if rec.get("seconds") is not None:
                pts_s.append((mp, float(rec["seconds"]), f"{tip}, {rec['seconds']:.2f} s", exp.name))
                secs.append((float(rec["seconds"]), mp))
            if rec.get("peak_memory_gb") is not None:
                pts_m.append((mp, float(rec["peak_memory_gb"]), f"{tip}, {rec['peak_memory_gb']:.2f} GB", exp.name))
        if secs:
            total, mps = sum(s for s, _ in secs), sum(m for _, m in secs)
            n_all, total_all = n_all + len(secs), total_all + total
            rows.append(f"<tr><td>{escape(exp.title)}</td><td>{len(secs)}</td><td>{total:.2f}</td>"
                        f"<td>{total / len(secs):.3f}</td><td>{total / mps:.3f}</td></tr>")
    if len(rows) > 1:
        rows.append(f'<tr class="total"><td>all (each image once)</td><td>{n_all:.0f}</td><td>{total_all:.2f}</td>'
                    f"<td>{total_all / n_all:.3f}</td><td></td></tr>")
    charts = svg.scatter("seconds per image against megapixels", pts_s, "megapixels", "seconds")
    charts += svg.scatter("peak memory against megapixels", pts_m, "megapixels", "peak GB") if pts_m else ""
    note = "" if pts_m else '<p class="note">Peak GPU memory was not measured (a CPU run records none).</p>'
    table = _table("<th>experiment</th><th>images</th><th>seconds</th><th>s / image</th><th>s / MP</th>",
                   "".join(rows)) if rows else ""
    return f'<div class="metrics"><div class="charts">{charts}</div>{note}{table}</div>'


def render(sweep: Sweep, analyses: dict[str, Analysis], data: dict, learned: list[LearnedMetric],
           trace: str | None, built: str, originals: str = "..") -> str:
    counts = {"ok": 0, "failed": 0, "missing": 0}
    for it in sweep.items.values():
        counts[it.status] = counts.get(it.status, 0) + 1
    models = sorted({(it.record.get("model") or {}).get("label") or (it.record.get("model") or {}).get("model") or ""
                     for it in sweep.items.values() if isinstance(it.record.get("model"), dict)} - {""})
    devices = sorted({str(it.record.get("device")) for it in sweep.items.values() if it.record.get("device")})
    nav = "".join(f'<a href="#exp-{escape(e.name)}">{escape(e.title)}</a>' for e in sweep.experiments)
    nav += '<a href="#cost">Cost</a>' + (f'<a class="trace" href="{escape(trace)}">Trace</a>' if trace else "")
    nav += '<a class="top-link" href="#top">↑ top</a>' 
    sections = []
    for exp in sweep.experiments:
        hover = HOVER.get(exp.layout, HOVER_DEFAULT)
        n_ok = sum(it.ok for it in exp.items)
        legend = analyses[exp.name].legend
        frames, slider = layout_html(exp, data), slider_html(exp, data)
        body = slider + frames if kind(exp) == "quant" else frames + slider  # quant: its grid is long, the slider first
        sections.append(
            f'<section class="experiment" id="exp-{escape(exp.name)}" style="--hover:{hover}">'
            f'<h2>{escape(exp.title)}</h2><p class="knob">knob: <code>{escape(exp.knob)}</code> · '
            f'{n_ok} of {len(exp.items)} frames · hover a frame to enlarge it, click for the full image and its recipe</p>'
            + (f'<p class="legend">{escape(legend)}</p>' if legend else "")
            + f'{body}{metrics_html(analyses[exp.name])}</section>'
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
        "originals": escape(originals),
    }
    template = (resources.files("zturbo.report") / "templates" / "index.html").read_text(encoding="utf-8")
    return Template(template).substitute(fields)
