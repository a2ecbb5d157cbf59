"""Every image carries its recipe: PNG text chunks with the full recipe as JSON (`zturbo`) and an
A1111-style `parameters` line that other tools read. `read_recipe` takes it back for --from."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .atomic import atomic_path
from .errors import InvalidParams

RECIPE_KEY = "zturbo"
A1111_KEY = "parameters"


def a1111_line(recipe: dict[str, Any]) -> str:
    p = recipe["params"]
    model = recipe.get("model", {})
    lines = [p["prompt"]]
    if p.get("negative_prompt"):
        lines.append(f"Negative prompt: {p['negative_prompt']}")
    fields = {
        "Steps": p["steps"],
        "Sampler": "Euler (flow matching)",
        "CFG scale": f"{p['guidance']:g}",
        "Seed": p["seed"],
        "Size": f"{p['width']}x{p['height']}",
        "Model": model.get("label") or model.get("model"),
        "Model hash": (model.get("weights_sha256") or model.get("revision") or "")[:10] or None,
        "Quant": model.get("quant"),
        "Passes": recipe.get("passes"),
        "RNG": p.get("rng"),
        "Version": f"zturbo {recipe.get('versions', {}).get('zturbo', '')}".strip(),
    }
    lines.append(", ".join(f"{k}: {v}" for k, v in fields.items() if v is not None and v != ""))
    return "\n".join(lines)


def save_png(image: Image.Image, target: str | os.PathLike, recipe: dict[str, Any]) -> Path:
    """Write `image` with its recipe, atomically (temp file + rename)."""
    info = PngInfo()
    info.add_itxt(RECIPE_KEY, json.dumps(recipe, sort_keys=True))
    info.add_itxt(A1111_KEY, a1111_line(recipe))
    with atomic_path(target) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(target)


def read_recipe(path: str | os.PathLike) -> dict[str, Any]:
    """The recipe stored in a zturbo PNG; a clear error for anything else."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            text = im.text.get(RECIPE_KEY) if hasattr(im, "text") else None
    except FileNotFoundError:
        raise InvalidParams(f"{path}: no such image") from None
    except OSError as exc:
        raise InvalidParams(f"{path} is not a readable image ({exc})") from None
    if not text:
        raise InvalidParams(f"{path} carries no zturbo recipe (it was not written by zturbo, or its metadata was stripped)")
    try:
        recipe = json.loads(text)
        recipe["params"]["prompt"]
    except (ValueError, KeyError, TypeError):
        raise InvalidParams(f"{path} has a damaged zturbo recipe") from None
    return recipe
