"""A small sweep folder made by the tiny engine, written exactly as the sweep runner's contract says
(plan.json, manifest.jsonl + a rank manifest, PNGs carrying their recipes)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from zturbo import GenerationParams
from zturbo.metadata import save_png

PROMPT = "a sleek black helmeted robot against a solid red background"

# experiment -> (title, knob, layout, axes, [(item id, param changes, axes, row, quant)])
SPEC = {
    "steps": ("Steps", "steps", "row", [{"key": "steps", "values": [1, 2, 3]}],
              [(f"steps-{s}", {"steps": s}, {"steps": s}, None, "bf16") for s in (1, 2, 3)]),
    "guidance": ("Guidance", "guidance", "row", [{"key": "guidance", "values": [0.0, 1.0, 2.0]}],
                 [(f"guidance-{g}", {"guidance": g}, {"guidance": g}, None, "bf16") for g in (0.0, 1.0, 2.0)]),
    "seeds": ("Seeds", "seed", "seeds", [{"key": "seed", "values": [0, 7]}],
              [(f"seeds-{r}-{s}", {"seed": s, "width": w, "height": h}, {"seed": s}, r, "bf16")
               for r, (w, h) in (("portrait", (32, 48)), ("landscape", (48, 32))) for s in (0, 7)]),
    "aspect": ("Aspect ratio", "size", "aspect", [{"key": "aspect", "values": ["2:3", "1:1", "16:9"]}],
               [(f"aspect-{a}", {"width": w, "height": h}, {"aspect": a}, None, "bf16")
                for a, (w, h) in (("2:3", (32, 48)), ("1:1", (48, 48)), ("16:9", (64, 32)))]),
    "resolution": ("Resolution", "size", "resolution", [{"key": "size", "values": ["32x16", "64x32"]}],
                   [(f"resolution-{w}x{h}", {"width": w, "height": h}, {"size": f"{w}x{h}"}, None, "bf16")
                    for w, h in ((32, 16), (64, 32))]),
    "quant": ("Quantization", "quant", "quant", [{"key": "quant", "values": ["bf16", "q8", "q2"]}],
              [("quant-bf16", {}, {"quant": "bf16"}, None, "bf16"), ("quant-q8", {}, {"quant": "q8"}, None, "q8"),
               ("quant-q2", {"seed": 5}, {"quant": "q2"}, None, "q2")]),
    "grid": ("Steps x guidance", "steps,guidance", "grid",
             [{"key": "steps", "values": [1, 2]}, {"key": "guidance", "values": [0.0, 1.0]}],
             [(f"grid-s{s}-g{g}", {"steps": s, "guidance": g}, {"steps": s, "guidance": g}, None, "bf16")
              for g in (0.0, 1.0) for s in (1, 2)]),
}
FAILED_ID = "guidance-2.0"  # recorded as failed: the report must show it as failed
BASE = dict(prompt=PROMPT, seed=42, width=32, height=32, steps=2, rng="cpu")


def make_tiny_sweep(root: Path, engine) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    plan = {"version": 1, "prompt_default": PROMPT, "step_mapping": "steps = transformer passes (diffusers >= 0.39)",
            "experiments": [], "items": {}}
    lines: list[list[dict]] = [[], []]  # manifest.jsonl, manifest.rank1.jsonl
    for n, (name, (title, knob, layout, axes, rows)) in enumerate(SPEC.items()):
        plan["experiments"].append({"name": name, "title": title, "knob": knob, "layout": layout,
                                    "axes": axes, "items": [r[0] for r in rows]})
        for k, (item_id, changes, item_axes, row, quant) in enumerate(rows):
            params = GenerationParams(**{**BASE, **changes})
            file = f"{name}/{item_id}.png"
            plan["items"][item_id] = {"experiment": name, "file": file, "params": params.to_dict(),
                                      "quant": quant, "axes": item_axes, "row": row}
            rec = {"id": item_id, "experiment": name, "file": file, "params": params.to_dict(), "quant": quant,
                   "axes": item_axes, "finished_at": dt.datetime(2026, 1, 1, 0, n, k).isoformat()}
            if item_id == FAILED_ID:
                rec.update(status="failed", error="out of GPU memory at 32x32: try a smaller size")
            else:
                result = engine.generate(params)
                recipe = dict(result.recipes[0], quant=quant)
                save_png(result.image, root / file, recipe)
                rec.update(status="ok", error=None, sha256="0" * 64, passes=recipe["passes"],
                           timings=recipe["timings"], seconds=sum(recipe["timings"].values()),
                           peak_memory_gb=recipe["peak_memory_gb"], device=recipe["device"],
                           versions=recipe["versions"], model=recipe["model"])
            lines[k % 2].append(rec)
    # a stale failure for steps-1, superseded later by its ok record: the last record wins
    lines[1].insert(0, {"id": "steps-1", "status": "failed", "error": "stale", "finished_at": "2025-01-01T00:00:00"})
    (root / "plan.json").write_text(json.dumps(plan, indent=1))
    for path, recs in zip(("manifest.jsonl", "manifest.rank1.jsonl"), lines):
        (root / path).write_text("".join(json.dumps(r) + "\n" for r in recs) + '{"id": "torn')
    (root / "trace").mkdir(exist_ok=True)
    (root / "trace" / "trace.html").write_text("<!doctype html><title>trace</title><p>trace")
    return root
