"""Upscale: "generate near native, then upscale" (article, Experiment 5), with any architecture
spandrel recognises, loaded safely, tiled to fit the memory there is, recorded in the recipe.

    from zturbo.upscale import Upscaler, upscale_file
    up = Upscaler.load("4x-UltraSharp.safetensors")          # GPU if there is one, bf16/fp16 if supported
    out = up.upscale(image, scale=2)                          # model output, Lanczos-resized to 2x
    out.image, out.record                                     # record joins the recipe under "upscale"
    upscale_file(up, "fox.png", "fox_x2.png", scale=2)        # keeps fox.png's recipe, adds the step
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from .. import defaults
from ..errors import InvalidParams
from .loading import UpscalerInfo, check_file, import_spandrel
from .recipe import save_upscaled, source_text, upscaled_recipe
from .tiling import run_tiled, spans, tile_for_memory
from .upscaler import Upscaled, Upscaler

__all__ = ["Upscaler", "Upscaled", "UpscalerInfo", "upscale_file", "upscale_result", "cached_upscaler", "check_file",
           "import_spandrel", "run_tiled", "spans", "tile_for_memory", "save_upscaled", "upscaled_recipe"]


def open_image(path: str | os.PathLike) -> Image.Image:
    path = Path(path)
    try:
        image = Image.open(path)
        image.load()
        return image
    except FileNotFoundError:
        raise InvalidParams(f"{path}: no such image") from None
    except OSError as exc:
        raise InvalidParams(f"{path} is not a readable image ({exc})") from None


def upscale_file(upscaler: Upscaler, source: str | os.PathLike, target: str | os.PathLike,
                 scale: float | None = None, size: tuple[int, int] | None = None, tile: int | None = None,
                 overlap: int = defaults.UPSCALE_OVERLAP,
                 on_tile: Callable[[int, int], None] | None = None) -> tuple[Path, dict[str, Any]]:
    """Upscale one image file into a PNG carrying the source's recipe plus this step. -> (path, record)"""
    if Path(target).resolve() == Path(source).resolve():
        raise InvalidParams(f"{target} is the input image: choose another output so the original is kept")
    image = open_image(source)
    out = upscaler.upscale(image, scale=scale, size=size, tile=tile, overlap=overlap, on_tile=on_tile)
    return save_upscaled(out.image, target, source_text(image), out.record), out.record


def upscale_result(upscaler: Upscaler, result, scale: float | None = None, size: tuple[int, int] | None = None,
                   tile: int | None = None, on_tile: Callable[[int, int], None] | None = None) -> None:
    """Upscale an Engine Result in place: each image replaced, its recipe gaining the step, so that
    result.save() writes the upscaled PNGs (zturbo generate --upscale; the sweep's upscale arm)."""
    for i, image in enumerate(result.images):
        out = upscaler.upscale(image, scale=scale, size=size, tile=tile, on_tile=on_tile)
        recipe = result.recipes[i]
        result.images[i] = out.image
        result.recipes[i] = dict(recipe, upscale=[*recipe.get("upscale", []), out.record],
                                 timings={**recipe.get("timings", {}), "upscale": out.record["seconds"]})


@functools.lru_cache(maxsize=1)
def _cached(path: str, device: str | None, sha256: str) -> Upscaler:
    return Upscaler.load(path, device=device)


def cached_upscaler(path: str | os.PathLike, device=None) -> Upscaler:
    """One loaded upscaler kept for repeated use (a sweep's upscaled items share it); a file changed
    in place since it was loaded is loaded again."""
    from ..hashing import cached_sha256

    path = check_file(path).resolve()
    return _cached(str(path), None if device is None else str(device), cached_sha256(path))
