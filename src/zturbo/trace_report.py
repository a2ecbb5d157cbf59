"""Show a trace (zturbo.trace): a terminal table, a filmstrip of the per-pass x0 previews, and a
self-contained trace.html (inline CSS, images as data URIs: no CDN, still works when moved)."""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw

from . import defaults
from .atomic import write_text_atomic, write_with


def fmt(value) -> str:
    """A fact's value in one readable line (lists of numbers stay compact)."""
    if isinstance(value, str):
        return value.replace("\n", "\\n")
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) for v in value):
            return " ".join(repr(v) for v in value)
        # no thousands separators inside a list: [1,536, 512] would read as three numbers
        return "[" + ", ".join(str(v) if type(v) is int else fmt(v) for v in value) + "]"
    return str(value)


def render_table(trace: dict, width: int | None = None) -> str:
    width = width or max(80, min(140, shutil.get_terminal_size((100, 20)).columns))
    p = trace["params"]
    lines = [
        f"zturbo trace — {trace['model']['label']} on {trace['device']}",
        f"prompt {p['prompt']!r}  size {p['width']}x{p['height']}  seed {p['seed']}  steps {p['steps']}  "
        f"guidance {p['guidance']:g}",
    ]
    key_w = min(34, max(len(k) for s in trace["stages"] for k in s["facts"])) + 2
    for s in trace["stages"]:
        lines += ["", f"[{s['stage']}] {s['title']}"]
        for key, value in s["facts"].items():
            wrapped = textwrap.wrap(fmt(value), max(30, width - key_w - 4)) or [""]
            lines.append(f"    {key:<{key_w - 1}} {wrapped[0]}")
            lines += [" " * (4 + key_w) + w for w in wrapped[1:]]
    return "\n".join(lines)


def filmstrip(previews: list[Image.Image], sigmas: list[float], height: int = defaults.TRACE_THUMB) -> Image.Image:
    """Frames side by side, each labelled with its pass number and sigma."""
    label_h = 16
    frames = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height),
                                       Image.NEAREST if im.height < height else Image.LANCZOS) for im in previews]
    strip = Image.new("RGB", (sum(f.width for f in frames) + 4 * (len(frames) + 1), height + label_h + 8), "white")
    draw, x = ImageDraw.Draw(strip), 4
    for i, (frame, s) in enumerate(zip(frames, sigmas), 1):
        strip.paste(frame, (x, 4))
        draw.text((x + 2, height + 6), f"{i}: sigma {s:.3f}" if frame.width >= 70 else str(i), fill="black")
        x += frame.width + 4
    return strip


def _png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _data_uri(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(image)).decode()


_CSS = """body{font:14px/1.45 system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%}td{padding:3px 8px;vertical-align:top;border-bottom:1px solid #eee}
td:first-child{width:32%;color:#555}code,.v{font-family:ui-monospace,monospace;font-size:12.5px;word-break:break-word}
img{max-width:100%;image-rendering:pixelated}.meta,.read{color:#666}
.strip{display:flex;gap:6px;overflow-x:auto}.strip figure{margin:0;flex:0 0 auto}
.strip img{height:160px;width:auto;max-width:none}figcaption{font-size:12px;color:#555;text-align:center}"""


# one line per stage: what to read in its numbers (the article's Part 3, step by step)
READ = {
    1: "The prompt is wrapped in the chat template, then tokenized; the pipeline reads at most the cap and "
       "silently drops the rest.",
    2: "The text encoder returns the embedding output plus one hidden state per layer; the one the DiT "
       "received is found by comparing them with its input.",
    3: "The seed fixes this tensor, and with it the picture.",
    4: "The VAE works at a fraction of the size with more channels; patches of latent pixels become tokens, "
       "hence the size grid.",
    5: "Image and caption tokens share one sequence through the same blocks, each part padded to the multiple "
       "shown.",
    6: "Position ids: caption tokens count along the first axis, image tokens spread over height and width.",
    7: "A hook counts the transformer passes (compare them with the steps asked); the frames show what the "
       "model predicts the clean image to be at each pass.",
    8: "The latents are unscaled and shifted, then decoded to pixels.",
    "3i": "The input image is encoded by the VAE and mixed with the noise at the strength's first sigma; the "
          "passes before that sigma are skipped, so fewer run (and with a mask, only its white part is repainted).",
}


def pass_sigmas(trace: dict) -> list[float]:
    """Each pass's starting sigma: the schedule from the first pass that ran (an input image skips some)."""
    sigmas = next(s["facts"] for s in trace["stages"] if s["stage"] == 7)["sigmas (shifted, then the end)"]
    skipped = next((s["facts"].get("passes skipped (the schedule's first)", 0) for s in trace["stages"]
                    if s["stage"] == "3i"), 0)
    return sigmas[skipped:]


def _pictures_html(pictures: list) -> str:
    figs = "".join(f"<figure><img alt='{html.escape(c)}' src='{_data_uri(im)}'><figcaption>{html.escape(c)}</figcaption>"
                   "</figure>" for c, im in pictures)
    return f"<div class=strip>{figs}</div>"


def render_html(trace: dict, strip: Image.Image, image: Image.Image, previews: list[Image.Image] = (),
                pictures: dict | None = None) -> str:
    e, p = html.escape, trace["params"]
    parts = [
        "<!doctype html><html lang=en><meta charset=utf-8>",
        f"<title>zturbo trace — {e(p['prompt'][:60])}</title><style>{_CSS}</style>",
        "<h1>From prompt to picture: the eight stages, measured</h1>",
        f"<p class=meta>{e(trace['model']['label'])} · {e(trace['device'])} · "
        f"{e(' · '.join(f'{k} {v}' for k, v in trace['versions'].items()))}</p>",
        f"<p><b>prompt</b> <code>{e(p['prompt'])}</code><br>{p['width']}×{p['height']} · seed {p['seed']} · "
        f"steps {p['steps']} · guidance {p['guidance']:g}</p>",
    ]
    for s in trace["stages"]:
        parts.append(f"<h2 id=stage-{s['stage']}>{s['stage']}. {e(s['title'])}</h2>"
                     f"<p class=read>{e(READ.get(s['stage'], ''))}</p><table>")
        parts += [f"<tr><td>{e(k)}<td class=v>{e(fmt(v))}" for k, v in s["facts"].items()]
        parts.append("</table>")
        if (pictures or {}).get(s["stage"]):
            parts.append(_pictures_html(pictures[s["stage"]]))
        if s["stage"] == 7:
            sig = pass_sigmas(trace)
            frames = previews or [strip]
            figs = "".join(
                f"<figure><img alt='x0 after pass {i}' src='{_data_uri(im)}'>"
                f"<figcaption>pass {i} · σ {sig[i - 1]:.3f}</figcaption></figure>"
                for i, im in enumerate(frames, 1))
            parts.append("<p>The model's estimate of the clean image after each pass (x0), decoded by the VAE "
                         "(also <a href=filmstrip.png>filmstrip.png</a>):</p>" f"<div class=strip>{figs}</div>")
    parts.append(f"<h2>Result</h2><img alt='final image' src='{_data_uri(image)}'>")
    return "\n".join(parts) + "\n"


def write_trace(out_dir: str | Path, trace: dict, previews: list[Image.Image], image: Image.Image,
                pictures: dict | None = None) -> dict[str, Path]:
    """trace.json, filmstrip.png, image.png and trace.html in `out_dir`, each written atomically.
    `pictures`: run_trace's stage pictures, shown under their stage in trace.html."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    strip = filmstrip(previews, pass_sigmas(trace))
    doc = dict(trace, files={"filmstrip": "filmstrip.png", "image": "image.png", "html": "trace.html"})
    paths = {
        "json": write_text_atomic(out / "trace.json", json.dumps(doc, indent=1, ensure_ascii=False) + "\n"),
        "filmstrip": write_with(out / "filmstrip.png", lambda t: strip.save(t, format="PNG")),
        "image": write_with(out / "image.png", lambda t: image.save(t, format="PNG")),
        "html": write_text_atomic(out / "trace.html", render_html(trace, strip, image, previews, pictures)),
    }
    return paths
