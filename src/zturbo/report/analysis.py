"""Per-experiment measurements: which metric answers which of the article's questions, as captions
under each frame, a chart or two and a table. Every number comes from the images (metrics.py)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import PurePath
from typing import Callable

from PIL import Image

from .. import defaults
from .. import metrics as M
from . import svg
from .sweepdir import Experiment, Item


@dataclasses.dataclass
class Analysis:
    captions: dict[str, str] = dataclasses.field(default_factory=dict)  # item id -> numbers under the frame
    flags: dict[str, str] = dataclasses.field(default_factory=dict)  # item id -> a warning
    charts: list[str] = dataclasses.field(default_factory=list)  # inline SVG
    headers: list[str] = dataclasses.field(default_factory=list)
    rows: list[list[str]] = dataclasses.field(default_factory=list)
    summary: str = ""
    legend: str = ""  # what the short names under the frames mean, printed beside them
    values: dict[str, dict[str, float | None]] = dataclasses.field(default_factory=dict)  # raw, for tests/JSON
    labels: dict[str, str] = dataclasses.field(default_factory=dict)  # item id -> label, where not label()
    groups: dict[str, str] = dataclasses.field(default_factory=dict)  # item id -> its group's title
    refs: dict[str, str] = dataclasses.field(default_factory=dict)  # item id -> the frame it was measured against


def kind(exp: Experiment) -> str:
    """The article experiment this one is (by name, then knob, then layout); 'generic' otherwise."""
    for key in (exp.name, exp.knob, exp.layout):
        if key in ANALYSES:
            return key
    return {"seed": "seeds"}.get(exp.knob, "generic")


def fmt_value(key: str, v) -> str:
    if key == "guidance" and isinstance(v, (int, float)):
        return f"{float(v):g}"
    if key == "lora" and isinstance(v, str):
        return lora_name(v)
    if key == "image" and isinstance(v, str):
        return PurePath(v).name  # the file, not the folder it was in
    return str(v)


def lora_name(value: str) -> str:
    """A lora axis value by the LoRA's file name: 'none' -> 'no LoRA', '/x/style.safetensors:0.5' ->
    'style.safetensors ×0.5' (the folder says nothing to a reader of the report)."""
    from ..lora import parse_arg

    if value.strip().lower() == "none":
        return "no LoRA"
    path, scale = parse_arg(value.strip())
    name = PurePath(path).name
    return name if path == value.strip() else f"{name} ×{scale:g}"


def quant_name(q: str) -> str:
    return "bf16" if q == "bf16" else str(q).upper()


def axis_text(key: str, v) -> str:
    v = fmt_value(key, v)
    return {"steps": f"{v} step" + ("" if v == "1" else "s"), "guidance": f"guidance {v}", "seed": f"seed {v}",
            "quant": quant_name(v), "size": v.replace("x", "×"), "aspect": v, "lora": v}.get(key, f"{key} {v}")


def label(exp: Experiment, item: Item) -> str:
    """What a reader calls this frame in this experiment: '3 steps', 'guidance 0.5', 'seed 42', '16:9', 'Q8'."""
    k = kind(exp)
    if k == "quant":
        return quant_name(item.quant)
    if k == "resolution" and all(item.size):
        return f"{item.size[0]}×{item.size[1]}"
    keys = [a["key"] for a in exp.axes] or list(item.axes)
    keys = {"seeds": keys[:1], "aspect": ["aspect"]}.get(k, keys)
    parts = [axis_text(key, item.axes[key]) for key in keys if key in item.axes and key != "orientation"]
    return " · ".join(parts) or item.id


def quant_groups(exp: Experiment) -> dict[str, list[Item]]:
    """Quant frames grouped by the bf16 image they re-make (axis "source"), titled by that image."""
    if not any("source" in it.axes for it in exp.items):
        return {"": list(exp.items)}
    groups: dict[str, list[Item]] = {}
    for it in exp.items:
        groups.setdefault(it.axes.get("source") or (it.id if it.quant == "bf16" else ""), []).append(it)
    titled = {}
    for src, its in groups.items():
        ref = next((it for it in its if it.id == src), None)
        desc = " · ".join(axis_text(k, v) for k, v in ref.axes.items() if k not in ("quant", "source", "orientation")) if ref else ""
        titled[f"{ref.experiment}: {desc}" if ref and desc else src] = its
    return titled


def _ok(exp: Experiment, images: dict[str, Image.Image]) -> list[Item]:
    return [it for it in exp.items if it.ok and it.id in images]


def _f(v: float | None, digits: int = 3) -> str:
    return svg.fmt(v, digits)


def steps(exp, images, a: Analysis) -> None:
    ok = _ok(exp, images)
    if len(ok) < 2:
        return
    ref = ok[-1]
    a.headers = ["frame", "SSIM to last", "PSNR dB", "MAD (0-255)"]
    xs, s_ssim, s_mad = [], [], []
    for it in ok:
        im, rim = images[it.id], images[ref.id]
        v = {"ssim": M.ssim(rim, im), "psnr": M.psnr(rim, im), "mad": M.mad(rim, im)}
        a.values[it.id] = v
        a.refs[it.id] = ref.id
        a.captions[it.id] = "reference (last)" if it is ref else f"SSIM {v['ssim']:.3f} · PSNR {_f(v['psnr'])} dB"
        a.rows.append([label(exp, it), f"{v['ssim']:.4f}", _f(v["psnr"]), f"{v['mad']:.2f}"])
        xs.append(label(exp, it).split(" ")[0])
        s_ssim.append(v["ssim"])
        s_mad.append(v["mad"])
    a.charts += [svg.line_chart(f"SSIM of each frame to {label(exp, ref)}", xs, {"SSIM to last": s_ssim}, exp.knob),
                 svg.line_chart(f"mean absolute difference to {label(exp, ref)}", xs, {"MAD": s_mad}, exp.knob)]
    a.legend = (f"Under each frame: SSIM = structural similarity to {label(exp, ref)} (1 = identical); "
                "PSNR = how close its pixels are to it, in dB (higher = closer).")
    conv = next((it for it in ok if a.values[it.id]["ssim"] >= defaults.REPORT_CONVERGED_SSIM), ref)
    a.summary = (f"Distance of each frame to the last ({label(exp, ref)}). First frame within SSIM "
                 f"{defaults.REPORT_CONVERGED_SSIM} of it: {label(exp, conv)}.")


def guidance(exp, images, a: Analysis) -> None:
    ok = _ok(exp, images)
    a.headers = ["frame", "RMS contrast", "mean saturation", "clipped pixels"]
    xs, series = [], {"contrast": [], "saturation": [], "clipped": []}
    for it in ok:
        im = images[it.id]
        v = {"contrast": M.rms_contrast(im), "saturation": M.mean_saturation(im), "clipped": M.clipped_fraction(im)}
        a.values[it.id] = v
        a.captions[it.id] = f"contrast {v['contrast']:.3f} · sat {v['saturation']:.3f} · clip {v['clipped']:.1%}"
        a.rows.append([label(exp, it), f"{v['contrast']:.4f}", f"{v['saturation']:.4f}", f"{v['clipped']:.2%}"])
        xs.append(fmt_value("guidance", next(iter(it.axes.values()), it.id)))
        for k in series:
            series[k].append(100 * v[k] if k == "clipped" else v[k])  # a percentage, as in the captions
    if ok:
        titles = {"contrast": "RMS contrast (luminance) by guidance", "saturation": "mean saturation by guidance",
                  "clipped": "clipped pixels (%) by guidance"}
        a.charts += [svg.line_chart(titles[k], xs, {titles[k]: v}, exp.knob) for k, v in series.items()]
        a.summary = "The contrast-knob drift: luminance contrast, colour saturation and crushed/blown pixels per frame."
        a.legend = ("Under each frame: contrast = RMS contrast of the luminance (0-1); sat = mean colour saturation "
                    "(0-1); clip = the share of pixels crushed to black or blown to white.")


def seeds(exp, images, a: Analysis) -> None:
    rows: dict[str, list[Item]] = {}
    for it in _ok(exp, images):
        rows.setdefault(it.row or "all", []).append(it)
    a.headers = ["row", "frames", "mean 1-SSIM (diversity)"]
    means = []
    for row, its in rows.items():
        if len(its) < 2:
            continue
        m = M.pairwise_diversity([images[it.id] for it in its])
        n = len(its)
        mean = float(m.sum() / (n * (n - 1)))
        means.append(f"{row} {mean:.3f}")
        for i, it in enumerate(its):
            own = float(m[i].sum() / (n - 1))
            a.values[it.id] = {"diversity": own}
            a.captions[it.id] = f"1-SSIM to others {own:.3f}"
        a.legend = "Under each frame: 1-SSIM to others = how different it is from the other seeds of its row (0 = the same picture)."
        a.values[f"row:{row}"] = {"mean_diversity": mean}
        a.rows.append([row, str(n), f"{mean:.4f}"])
        a.charts.append(svg.matrix(f"{row}: pairwise 1 - SSIM", [label(exp, it) for it in its], m.tolist()))
    a.summary = ("Pairwise diversity (1 - SSIM; 0 = the same picture) within each row: " + ", ".join(means)
                 + ". Rows of different shapes are not compared: a seed is not portable across shapes.") if means else ""


def _detail_and_dup(exp, images, a: Analysis, chart: bool) -> None:
    ok = _ok(exp, images)
    a.headers = ["frame", "size", "MP", "HF energy / MP", "duplication"]
    xs, hf, dup = [], [], []
    for it in ok:
        im = images[it.id]
        v = {"mp": im.width * im.height / 1e6, "hf_per_mp": M.hf_energy_per_mp(im), "duplication": M.duplication_score(im)}
        a.values[it.id] = v
        a.captions[it.id] = (f"{im.width}×{im.height} · HF/MP {svg.tick(v['hf_per_mp'])} · dup {v['duplication']:.2f}" if chart
                             else f"{im.width}×{im.height} · dup {v['duplication']:.2f}")  # aspect: narrow frames
        if kind(exp) == "resolution":  # the pixels on disk (an upscaled frame's recipe names its base size)
            a.labels[it.id] = f"{im.width}×{im.height}" + (f" · {it.row}" if it.upscale else "")
        if v["duplication"] >= defaults.REPORT_DUPLICATION_FLAG:
            a.flags[it.id] = f"possible repeated subject (self-similarity {v['duplication']:.2f})"
        a.rows.append([label(exp, it), f"{im.width}×{im.height}", f"{v['mp']:.3f}", _f(v["hf_per_mp"]), f"{v['duplication']:.3f}"])
        xs.append(f"{v['mp'] * 1e6 / defaults.MEGAPIXEL:.2g}")
        hf.append(v["hf_per_mp"])
        dup.append(v["duplication"])
    if ok and chart:  # one line per row (orientation), over the rungs' megapixels
        mps = sorted(set(xs), key=float)
        rows = list(dict.fromkeys(it.row or "frames" for it in ok))
        def by_row(vals):
            return {r: [next((v for it, x, v in zip(ok, xs, vals) if (it.row or "frames") == r and x == m), None)
                        for m in mps] for r in rows}
        a.charts += [svg.line_chart("detail: high-frequency energy per megapixel", mps, by_row(hf), "MP"),
                     svg.line_chart("duplication score (self-similarity)", mps, by_row(dup), "MP")]
    a.legend = (("Under each frame: HF/MP = detail, the high-frequency (squared Laplacian) energy per megapixel "
                 "(higher = finer detail); " if chart else "Under each frame: ")
                + f"dup = duplication score, how alike the image is to itself shifted (0-1; ≥ {defaults.REPORT_DUPLICATION_FLAG} "
                "is flagged as a possible repeated subject).")
    flagged = [label(exp, it) for it in ok if it.id in a.flags]
    a.summary = (f"Detail per megapixel (summed squared Laplacian / MP) and a duplication score (best correlation "
                 f"between the image and itself shifted; ≥ {defaults.REPORT_DUPLICATION_FLAG} is flagged). "
                 + (f"Flagged: {', '.join(flagged)}." if flagged else "No frame is flagged."))


def resolution(exp, images, a):
    _detail_and_dup(exp, images, a, chart=True)


def aspect(exp, images, a):
    _detail_and_dup(exp, images, a, chart=False)


def quant(exp, images, a: Analysis) -> None:
    groups = quant_groups(exp)
    per_level: dict[str, list[dict]] = {}
    detail = len(groups) == 1
    a.headers = (["frame", "SSIM vs bf16", "PSNR dB", "composition drift"] if detail else
                 ["precision", "frames", "mean SSIM vs bf16", "min SSIM", "mean drift", "max drift"])
    for title, its in groups.items():
        ok = [it for it in its if it.ok and it.id in images]
        ref = next((it for it in ok if it.quant == "bf16"), None)
        for it in its:
            a.groups[it.id] = title if not detail else ""
        if ref is None or len(ok) < 2:
            continue
        for it in ok:
            im, rim = images[it.id], images[ref.id]
            v = {"ssim": M.ssim(rim, im), "psnr": M.psnr(rim, im), "drift": M.composition_drift(rim, im)}
            a.values[it.id] = v
            a.refs[it.id] = ref.id
            a.captions[it.id] = "reference" if it is ref else f"SSIM {v['ssim']:.3f} · drift {v['drift']:.3f}"
            per_level.setdefault(quant_name(it.quant), []).append(v)
            if detail:
                a.rows.append([label(exp, it), f"{v['ssim']:.4f}", _f(v["psnr"]), f"{v['drift']:.4f}"])
    if not per_level:
        return
    a.legend = ("Under each frame: SSIM = structural similarity to the bf16 frame of the same recipe (1 = identical); "
                f"drift = composition drift, the mean luminance difference at {M.DRIFT_GRID}×{M.DRIFT_GRID} (0 = same layout).")
    levels = list(per_level)
    mean = {q: {k: sum(v[k] for v in vs) / len(vs) for k in ("ssim", "drift")} for q, vs in per_level.items()}
    if not detail:
        for q, vs in per_level.items():
            a.rows.append([q, str(len(vs)), f"{mean[q]['ssim']:.4f}", f"{min(v['ssim'] for v in vs):.4f}",
                           f"{mean[q]['drift']:.4f}", f"{max(v['drift'] for v in vs):.4f}"])
    a.charts += [svg.line_chart("SSIM vs bf16" + ("" if detail else " (mean)"), levels, {"SSIM": [mean[q]["ssim"] for q in levels]}, "precision"),
                 svg.line_chart("composition drift vs bf16" + ("" if detail else " (mean)"), levels, {"drift": [mean[q]["drift"] for q in levels]}, "precision")]
    worst = max(levels, key=lambda q: mean[q]["drift"])
    a.summary = (f"SSIM/PSNR against the bf16 frame of the same recipe, and composition drift: the mean luminance "
                 f"difference of the frames shrunk to {M.DRIFT_GRID}×{M.DRIFT_GRID} (detail noise vanishes there; a "
                 f"re-rolled picture does not). Most drift: {worst} ({mean[worst]['drift']:.3f}).")


def generic(exp, images, a: Analysis) -> None:
    ok = _ok(exp, images)
    a.headers = ["frame", "RMS contrast", "mean saturation", "HF energy / MP"]
    for it in ok:
        im = images[it.id]
        v = {"contrast": M.rms_contrast(im), "saturation": M.mean_saturation(im), "hf_per_mp": M.hf_energy_per_mp(im)}
        a.values[it.id] = v
        a.captions[it.id] = f"contrast {v['contrast']:.3f} · sat {v['saturation']:.3f}"
        a.rows.append([label(exp, it), f"{v['contrast']:.4f}", f"{v['saturation']:.4f}", _f(v["hf_per_mp"])])
    a.summary = "Contrast, saturation and detail of each frame."
    a.legend = "Under each frame: contrast = RMS contrast of the luminance (0-1); sat = mean colour saturation (0-1)."


ANALYSES: dict[str, Callable] = {
    "steps": steps, "guidance": guidance, "seeds": seeds, "aspect": aspect,
    "resolution": resolution, "quant": quant, "grid": generic,
}


def analyze(exp: Experiment, images: dict[str, Image.Image]) -> Analysis:
    a = Analysis()
    ANALYSES.get(kind(exp), generic)(exp, images, a)
    for it in exp.items:
        if it.status == "failed":
            a.captions[it.id] = "failed"
        elif not it.ok:
            a.captions[it.id] = "not generated yet"
    return a


def finite(v: float | None) -> float | None:
    """JSON has no infinity: identical frames' PSNR is sent as null and shown as ∞."""
    return v if v is None or math.isfinite(v) else None
