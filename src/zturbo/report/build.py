"""zturbo report: a sweep folder -> DIR/report/index.html, its assets and thumbnails.

    1. read the sweep (plan + merged manifests)       sweepdir.load
    2. thumbnails (WebP, JPEG without WebP support)  thumbs/
    3. measure every experiment from its pixels       analysis.analyze
    4. write the page: static HTML + one JSON blob     page.render, assets/
The page needs no server and no network: everything is relative to index.html.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote

from PIL import Image, features

from .. import __version__, defaults
from ..atomic import write_text_atomic
from ..metadata import generate_command as recipe_command
from . import analysis, learned, page
from .sweepdir import Item, load

ASSETS = ("report.css", "report.js")


def thumb_format() -> tuple[str, str]:
    return ("WEBP", ".webp") if features.check("webp") else ("JPEG", ".jpg")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:80] + "-" + hashlib.sha1(name.encode()).hexdigest()[:6]


def url(rel: str) -> str:
    """A relative URL for a path relative to index.html (quoted: ids may hold ':' or spaces)."""
    if rel.startswith("file:"):  # originals on another Windows drive: already a URL
        return rel
    return "/".join(quote(part) for part in rel.split("/"))


def make_thumb(image: Image.Image, src: Path, target: Path) -> None:
    """Thumbnail at most REPORT_THUMB_PX on its long side; rebuilt only when the source is newer."""
    if target.exists() and target.stat().st_mtime >= src.stat().st_mtime:
        return
    fmt, _ = thumb_format()
    im = image.convert("RGB")
    im.thumbnail((defaults.REPORT_THUMB_PX, defaults.REPORT_THUMB_PX), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part")
    im.save(tmp, format=fmt, quality=defaults.REPORT_THUMB_QUALITY)
    tmp.replace(target)


def generate_command(item: Item) -> str:
    """The `zturbo generate` line that reproduces this image (then `zturbo upscale` for an upscaled frame)."""
    p, rec = item.params, item.record
    model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
    loras = [r for r in rec.get("loras") or [] if isinstance(r, dict) and r.get("path")]  # a LoRA sweep's too
    controlnet = rec.get("controlnet") if isinstance(rec.get("controlnet"), dict) else None
    cmd = recipe_command(p, model, item.quant, loras, controlnet)
    up = item.upscale
    if up and up.get("model") and up.get("size") and p.get("width"):
        base = Path(item.file).stem + "_base.png"
        cmd += " " + shlex.join(["-o", base]) + " && " + shlex.join(
            ["zturbo", "upscale", base, "--model", str(up["model"]), "--scale", f"{int(up['size'][0]) / int(p['width']):.4g}"])
    return cmd


def recipe_rows(item: Item) -> list[list[str]]:
    """What the lightbox lists: the knobs, what really ran, and what it cost."""
    p, rec = item.params, item.record
    model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
    timings = rec.get("timings") or {}
    rows = [
        ("status", item.status + (f": {item.error}" if item.error else "")),
        ("seed", p.get("seed")), ("steps", p.get("steps")), ("passes", rec.get("passes")),
        ("guidance", p.get("guidance")), ("size", f"{p.get('width')}×{p.get('height')}"),
        ("strength", p.get("strength") if p.get("image") else None),
        ("LoRA", ", ".join(f"{r.get('name')} ×{r.get('scale', 1.0):g}" for r in rec.get("loras") or []) or None),
        ("quant", item.quant), ("rng", p.get("rng")),
        ("seconds", None if rec.get("seconds") is None else f"{rec['seconds']:.3f}"),
        ("stages", ", ".join(f"{k} {v:.3f}s" for k, v in timings.items()) or None),
        ("peak memory", None if rec.get("peak_memory_gb") is None else f"{rec['peak_memory_gb']:.2f} GB"),
        ("device", rec.get("device")), ("model", (model or {}).get("label") or (model or {}).get("model")),
        ("finished", rec.get("finished_at")), ("prompt", p.get("prompt")),
        ("negative prompt", p.get("negative_prompt") or None),
    ]
    return [[k, str(v)] for k, v in rows if v is not None and v != ""]


def find_trace(root: Path, out: Path) -> str | None:
    """The trace page (issue: under the hood), relative to the report, when the sweep has one."""
    preferred = root / "trace" / "trace.html"
    found = preferred if preferred.is_file() else next(
        (p for p in sorted(root.rglob("trace.html")) if out not in p.parents), None)
    if found is None:
        return None
    return url("../" + found.relative_to(root).as_posix())


def originals_path(root: Path, out: Path) -> str:
    """Where the report finds the sweep's PNGs (or an input file), relative to index.html (also when -o is
    outside the sweep), so the pair can be moved together; absolute only across Windows drives."""
    try:
        return Path(os.path.relpath(root.resolve(), out.resolve())).as_posix()
    except ValueError:
        return root.resolve().as_uri()


def _input_file(item: Item, role: str, rec: dict[str, Any]) -> Path | None:
    """Where an image-to-image input is: the sweep's copy (inputs/<sha256>.<ext>, named relative to the PNG),
    else the path it was read from, else the plan's path; None when none is there any more."""
    candidates = []
    if rec.get("file") and item.path is not None:
        candidates.append(item.path.parent / rec["file"])
    candidates += [Path(p) for p in (rec.get("source"), item.params.get(role)) if isinstance(p, str)]
    return next((c for c in candidates if c.is_file()), None)


def input_entries(item: Item, out: Path, cache: dict[Path, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The input image and mask beside an image-to-image item's row: thumbnail (one per file), full-size URL
    and pixel size. A file that cannot be found or read is left out."""
    recorded = item.record.get("inputs") if isinstance(item.record.get("inputs"), dict) else {}
    out_list = []
    for role in ("image", "mask"):
        rec = recorded.get(role) or ({} if item.params.get(role) else None)
        path = _input_file(item, role, rec) if rec is not None else None
        if path is None:
            continue
        path = path.resolve()
        if path not in cache:
            cache[path] = None
            try:
                with Image.open(path) as im:
                    im.load()
                    pic = im.convert("L" if role == "mask" else "RGB")
            except OSError:
                continue
            _, ext = thumb_format()
            thumb = f"thumbs/inputs/{_safe(path.name)}-{_safe(str(path.parent))[-6:]}{ext}"
            make_thumb(pic, path, out / thumb)
            cache[path] = {"thumb": url(thumb), "full": url(originals_path(path, out)), "w": pic.width, "h": pic.height,
                           "key": str(path)}
        if cache[path] is not None:
            out_list.append({"role": role, **cache[path]})
    return out_list


def build_report(sweep_dir: str | Path, out: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> Path:
    """Write the report for `sweep_dir` and return the path of its index.html."""
    say = progress or (lambda _msg: None)
    sweep = load(sweep_dir)
    root = sweep.root
    out = Path(out) if out else root / defaults.REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    rel_root = originals_path(root, out)
    _, ext = thumb_format()

    images: dict[str, Image.Image] = {}
    data: dict[str, dict[str, Any]] = {}
    input_cache: dict[Path, dict[str, Any] | None] = {}
    for item in sweep.items.values():
        entry = {"id": item.id, "status": item.status, "error": item.error, "experiment": item.experiment,
                 "command": generate_command(item) if item.params.get("prompt") is not None else None,
                 "recipe": recipe_rows(item)}
        if item.params.get("image"):
            entry["inputs"] = input_entries(item, out, input_cache)
        if item.ok:
            try:
                with Image.open(item.path) as im:
                    im.load()
                    images[item.id] = im.convert("RGB")
            except OSError as exc:
                item.status, item.error = "failed", f"unreadable image {item.file}: {exc}"
                entry.update(status=item.status, error=item.error)
            else:
                thumb = f"thumbs/{_safe(item.experiment)}/{_safe(item.id)}{ext}"
                make_thumb(images[item.id], item.path, out / thumb)
                entry.update(thumb=url(thumb), full=url(f"{rel_root}/{item.file}"),
                             w=images[item.id].width, h=images[item.id].height)
        data[item.id] = entry
    say(f"{len(images)} images read, thumbnails in {out / 'thumbs'}")

    analyses = {}
    for exp in sweep.experiments:
        say(f"measuring {exp.name} ({len(exp.items)} frames)")
        analyses[exp.name] = analysis.analyze(exp, images)
    learned_status = learned.status()
    learned.measure(learned_status, images, {i: sweep.items[i].params.get("prompt", "") for i in images}, analyses)
    for exp in sweep.experiments:
        # an item can appear in two experiments (quant re-uses the bf16 frames): one view per experiment
        for it in exp.items:
            data[it.id].setdefault("views", {})[exp.name] = {
                "label": analyses[exp.name].labels.get(it.id) or analysis.label(exp, it),
                "caption": analyses[exp.name].captions.get(it.id, ""),
                "flag": analyses[exp.name].flags.get(it.id),
                "group": analyses[exp.name].groups.get(it.id),
            }

    html = page.render(
        sweep=sweep, analyses=analyses, data=data, learned=learned_status,
        trace=find_trace(root, out.resolve()), originals=rel_root,
        built=f"zturbo {__version__}, {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
    )
    assets = out / "assets"
    assets.mkdir(exist_ok=True)
    for name in ASSETS:
        src = resources.files("zturbo.report") / "static" / name
        write_text_atomic(assets / name, src.read_text(encoding="utf-8"))
    index = write_text_atomic(out / "index.html", html)
    say(f"report: {index}")
    return index

