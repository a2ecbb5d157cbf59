"""Tiled inference with overlap and blending, and tile sizes from free memory.

Hand-written because spandrel has none: its descriptors only advise whether tiling is safe
(`ModelTiling`) and pad a single input to the architecture's size requirements.

Each tile is run with its neighbours' overlap; in the output, every tile is weighted by a ramp that
rises linearly across the strip it shares with a neighbour (and stays 1 at the image border), so
two overlapping tiles' weights sum to 1 everywhere and a tile's edge pixels, the ones its zero
padding spoiled, count least. The result is accumulated on the CPU: the device holds one tile.
"""

from __future__ import annotations

import math
import os
from typing import Callable

import torch

from .. import defaults


def spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[start, end) windows of at most `tile` covering 0..length, neighbours sharing >= `overlap`."""
    if tile >= length:
        return [(0, length)]
    overlap = min(overlap, tile // 2)
    stride = tile - overlap
    starts = list(range(0, length - tile, stride)) + [length - tile]
    return [(s, s + tile) for s in starts]


def ramp(n: int, left: int, right: int) -> torch.Tensor:
    """Weights for n output pixels: rising over the first `left`, falling over the last `right`."""
    k = torch.arange(n, dtype=torch.float32) + 0.5
    w = torch.ones(n)
    if left:
        w = torch.minimum(w, k / left)
    if right:
        w = torch.minimum(w, (n - k) / right)
    return w


def _ramps(windows: list[tuple[int, int]], scale: int) -> list[torch.Tensor]:
    out = []
    for i, (s, e) in enumerate(windows):
        left = windows[i - 1][1] - s if i > 0 else 0
        right = e - windows[i + 1][0] if i + 1 < len(windows) else 0
        out.append(ramp((e - s) * scale, left * scale, right * scale))
    return out


def count_tiles(h: int, w: int, tile: int | None, overlap: int) -> int:
    if not tile:
        return 1
    return len(spans(h, tile, overlap)) * len(spans(w, tile, overlap))


def run_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    scale: int,
    tile: int | None,
    overlap: int = defaults.UPSCALE_OVERLAP,
    on_tile: Callable[[], None] | None = None,
) -> torch.Tensor:
    """fn applied to x (1, C, H, W; CPU) tile by tile; returns (1, C', H*scale, W*scale) on the CPU, fp32.
    fn gets each tile as a CPU fp32 tensor and moves it where it runs."""
    _, _, h, w = x.shape
    if not tile or (tile >= h and tile >= w):
        out = fn(x).float().cpu()
        if on_tile:
            on_tile()
        return out
    ys, xs = spans(h, tile, overlap), spans(w, tile, overlap)
    wy, wx = _ramps(ys, scale), _ramps(xs, scale)
    out = weight = None
    for (y0, y1), ry in zip(ys, wy):
        for (x0, x1), rx in zip(xs, wx):
            part = fn(x[:, :, y0:y1, x0:x1]).float().cpu()
            if out is None:
                out = torch.zeros(1, part.shape[1], h * scale, w * scale)
                weight = torch.zeros(1, 1, h * scale, w * scale)
            m = (ry[:, None] * rx[None, :])[None, None]
            sy, sx = slice(y0 * scale, y1 * scale), slice(x0 * scale, x1 * scale)
            out[:, :, sy, sx] += part * m
            weight[:, :, sy, sx] += m
            if on_tile:
                on_tile()
    return out / weight


# -- how big a tile fits -------------------------------------------------------------------------
def tile_for_memory(free_bytes: float, bytes_per_px: float, fraction: float = defaults.UPSCALE_MEMORY_FRACTION,
                    lo: int = defaults.UPSCALE_MIN_TILE, hi: int = defaults.UPSCALE_MAX_TILE,
                    multiple: int = defaults.UPSCALE_TILE_MULTIPLE) -> int:
    """The largest square tile whose activations (bytes_per_px per input pixel) fit in
    `fraction` of `free_bytes`, snapped down to `multiple`, kept within [lo, hi]."""
    side = math.sqrt(max(free_bytes, 0) * fraction / max(bytes_per_px, 1e-9))
    side = int(side) // multiple * multiple
    return max(lo, min(hi, side))


def free_cpu_bytes() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not on Linux: assume 4 GiB
        return 4 << 30


def measure_bytes_per_px(fn: Callable[[torch.Tensor], torch.Tensor], channels: int, device: torch.device,
                         side: int = defaults.UPSCALE_PROBE_PX) -> float:
    """Peak device memory of one probe tile, per input pixel (CUDA allocator statistics)."""
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn(torch.rand(1, channels, side, side))
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / (side * side)
