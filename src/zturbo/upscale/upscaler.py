"""Upscaler: a spandrel model loaded once, applied to PIL images tile by tile."""

from __future__ import annotations

import dataclasses
import math
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .. import defaults
from ..errors import InvalidParams, OutOfMemory
from ..machine import resolve_device
from .loading import UpscalerInfo, load_descriptor, pick_dtype
from .tiling import count_tiles, free_cpu_bytes, measure_bytes_per_px, run_tiled, tile_for_memory


@dataclasses.dataclass
class Upscaled:
    image: Image.Image
    record: dict[str, Any]  # what joins the image's recipe under "upscale"


def _to_tensor(image: Image.Image) -> torch.Tensor:
    a = np.asarray(image, dtype=np.float32) / 255.0
    a = a[..., None] if a.ndim == 2 else a
    return torch.from_numpy(a).permute(2, 0, 1)[None].contiguous()


def _to_image(t: torch.Tensor) -> Image.Image:
    a = (t[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255.0).round().astype(np.uint8)
    return Image.fromarray(a[..., 0] if a.shape[2] == 1 else a)


class Upscaler:
    def __init__(self, descriptor, info: UpscalerInfo, device: torch.device, dtype: torch.dtype):
        self.descriptor, self.info, self.device, self.dtype = descriptor, info, device, dtype
        self._bytes_per_px: float | None = None

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device | None = None, precision: str = "auto") -> Upscaler:
        """Any architecture spandrel recognises; on the GPU if there is one; bf16/fp16 where supported."""
        device = resolve_device(device)
        desc, info = load_descriptor(path)
        dtype = pick_dtype(desc, device, precision)
        return cls(desc.to(device).to(dtype), info, device, dtype)

    @property
    def scale(self) -> int:
        return self.info.scale

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        return self.descriptor(x.to(self.device, self.dtype))

    def auto_tile(self, width: int, height: int) -> int | None:
        """None (one piece) when the whole image fits in the memory budget, else a tile side."""
        if self.device.type == "cuda":
            if self._bytes_per_px is None:
                self._bytes_per_px = measure_bytes_per_px(self._run, self.descriptor.input_channels, self.device)
            free, _ = torch.cuda.mem_get_info(self.device)
            bpp, hi = self._bytes_per_px, defaults.UPSCALE_MAX_TILE
        else:
            free = free_cpu_bytes()
            bpp, hi = defaults.UPSCALE_CPU_BYTES_PER_PX_PER_SCALE2 * self.scale ** 2, defaults.UPSCALE_CPU_MAX_TILE
        tile = tile_for_memory(free, bpp, hi=hi)
        return None if tile >= max(width, height) else tile

    def _target(self, w: int, h: int, scale: float | None, size: tuple[int, int] | None) -> tuple[int, int]:
        if size is not None and scale is not None:
            raise InvalidParams("give a scale or a target size, not both")
        if size is None:
            scale = float(scale if scale is not None else self.scale)
            if not 0 < scale <= self.scale:
                raise InvalidParams(f"scale {scale:g}: {self.info.name} is a {self.scale}x model; use a scale in "
                                    f"(0, {self.scale}] or a {math.ceil(scale)}x model")
            size = (round(w * scale), round(h * scale))
        if not (0 < size[0] <= w * self.scale and 0 < size[1] <= h * self.scale):
            raise InvalidParams(f"{size[0]}x{size[1]} is beyond what a {self.scale}x model makes of {w}x{h}")
        return size

    def upscale(self, image: Image.Image, scale: float | None = None, size: tuple[int, int] | None = None,
                tile: int | None = None, overlap: int = defaults.UPSCALE_OVERLAP,
                on_tile: Callable[[int, int], None] | None = None) -> Upscaled:
        """The image upscaled by the model, then resized (Lanczos) to `scale` or `size` when they differ from
        the model's own factor. tile: a side in input pixels, 0 for one piece, None to size it by free memory.
        on_tile(done, total) is called before the first tile (done 0) and after each tile; again from 0 when
        an out-of-memory error makes the tiles smaller."""
        w, h = image.size
        target = self._target(w, h, scale, size)
        channels = self.descriptor.input_channels
        alpha = None
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:  # palette transparency too
            image = image.convert("RGBA")
            alpha = image.getchannel("A")
        rgb = image.convert({1: "L", 3: "RGB", 4: "RGBA"}.get(channels, "RGB"))
        if tile is None:  # a model that tiles internally (spandrel's ModelTiling.INTERNAL) gets the whole image
            internal = getattr(self.descriptor.tiling, "name", "") == "INTERNAL"
            tile = 0 if internal else self.auto_tile(w, h)
        elif tile < 0:
            raise InvalidParams(f"tile {tile}: use a positive size in pixels, 0 for no tiling, or leave it out")
        elif 0 < tile < 2 * overlap:
            raise InvalidParams(f"tile {tile} is smaller than twice the overlap ({overlap}); use --tile >= {2 * overlap}")
        t0 = time.perf_counter()
        x = _to_tensor(rgb)
        while True:
            total, done = count_tiles(h, w, tile, overlap), 0
            if on_tile:
                on_tile(0, total)

            def tick():
                nonlocal done
                done += 1
                if on_tile:
                    on_tile(done, total)

            try:
                out = run_tiled(self._run, x, self.scale, tile, overlap, tick)
                break
            except torch.OutOfMemoryError:
                # the estimate was too generous: halve the tile and try again, down to the minimum
                torch.cuda.empty_cache()
                side = tile or max(w, h)
                if side // 2 < defaults.UPSCALE_MIN_TILE:
                    raise OutOfMemory(f"upscaling {w}x{h} ran out of GPU memory even with "
                                      f"{defaults.UPSCALE_MIN_TILE}-pixel tiles; use --device cpu") from None
                tile = side // 2 // defaults.UPSCALE_TILE_MULTIPLE * defaults.UPSCALE_TILE_MULTIPLE
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        result = _to_image(out)
        if result.size != target:
            result = result.resize(target, Image.Resampling.LANCZOS)
        if alpha is not None and result.mode in ("RGB", "L"):
            result.putalpha(alpha.resize(target, Image.Resampling.LANCZOS))
        record = {
            **self.info.as_recipe(),
            "scale": round(target[0] / w, 4),
            "input_size": [w, h], "output_size": list(target),
            "precision": str(self.dtype).removeprefix("torch."), "device": str(self.device),
            "tile": tile or None, "overlap": overlap if tile else 0, "tiles": total,
            "seconds": round(time.perf_counter() - t0, 3),
            "spandrel": importlib_metadata.version("spandrel"),
        }
        return Upscaled(result, record)

