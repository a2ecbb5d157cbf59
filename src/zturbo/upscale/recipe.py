"""The upscaler joins the image's recipe: the source PNG's zturbo recipe is kept whole (so
`generate --from` still reproduces the base image) and an entry is appended to its "upscale" list.
An image without a zturbo recipe gets its upscale history under its own key, `zturbo-upscale`, and
keeps the text chunks other tools wrote (an A1111 `parameters` line gains the upscaler's fields)."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from PIL import Image

from ..metadata import A1111_KEY, RECIPE_KEY, a1111_line, write_png

UPSCALE_KEY = "zturbo-upscale"


def source_text(image: Image.Image) -> dict[str, str]:
    """The PNG text chunks of an opened image ({} for formats without them)."""
    return dict(getattr(image, "text", None) or {})


def upscaled_recipe(text: dict[str, str], record: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(chunk key, recipe) for the upscaled image: the source's recipe plus this upscale step."""
    for key in (RECIPE_KEY, UPSCALE_KEY):
        try:
            recipe = json.loads(text[key])
            if isinstance(recipe, dict):
                break
        except (KeyError, ValueError):
            continue
    else:
        key, recipe = UPSCALE_KEY, {}
    recipe = copy.deepcopy(recipe)
    steps = recipe.get("upscale")
    recipe["upscale"] = [*(steps if isinstance(steps, list) else []), record]
    if key == RECIPE_KEY and "params" not in recipe:
        key = UPSCALE_KEY  # not a generation recipe: keep --from's "no recipe" message accurate
    return key, recipe


def save_upscaled(image: Image.Image, target: str | os.PathLike, text: dict[str, str],
                  record: dict[str, Any]) -> Path:
    """Write the upscaled PNG atomically with the recipe (the source's plus this step)."""
    key, recipe = upscaled_recipe(text, record)
    chunks = {k: v for k, v in text.items() if k not in (RECIPE_KEY, UPSCALE_KEY, A1111_KEY) and isinstance(v, str)}
    chunks[key] = json.dumps(recipe, sort_keys=True)
    line = a1111_line(recipe)  # a zturbo recipe's whole line, upscaler fields included; else those fields alone
    if key != RECIPE_KEY and text.get(A1111_KEY):
        line = f"{text[A1111_KEY]}, {line}"  # another tool's line keeps its own fields
    chunks[A1111_KEY] = line
    return write_png(image, target, chunks)
