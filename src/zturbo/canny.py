"""Canny edges of a control image (--control-type canny), in numpy.

Why not a library: opencv-python-headless and scikit-image both do this, but neither is in zturbo's
environment, and a 40-line Canny (Gaussian blur, Sobel, non-maximum suppression, hysteresis) is cheaper than
a new binary dependency for one preprocessing step. White edges on black, as the Union ControlNet was trained.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from . import defaults


def _sobel(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.pad(a, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    return gx, gy


def canny(image: Image.Image, low: float = defaults.CANNY_LOW, high: float = defaults.CANNY_HIGH) -> Image.Image:
    """An RGB image of the edges of `image` (same size): thresholds on the gradient magnitude of 0..255 grey."""
    grey = np.asarray(image.convert("L").filter(ImageFilter.GaussianBlur(defaults.CANNY_BLUR)), dtype=np.float32)
    gx, gy = _sobel(grey)
    mag = np.hypot(gx, gy)
    # non-maximum suppression: keep a pixel only where it beats both neighbours across the edge (4 directions)
    angle = (np.rad2deg(np.arctan2(gy, gx)) + 180.0) % 180.0
    sector = ((angle + 22.5) // 45).astype(int) % 4  # 0: horizontal gradient, 1: 45°, 2: vertical, 3: 135°
    p = np.pad(mag, 1)
    h, w = mag.shape
    shift = lambda dy, dx: p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]  # noqa: E731
    pairs = {0: ((0, 1), (0, -1)), 1: ((1, 1), (-1, -1)), 2: ((1, 0), (-1, 0)), 3: ((1, -1), (-1, 1))}
    keep = np.zeros_like(mag, dtype=bool)
    for s, (a, b) in pairs.items():
        keep |= (sector == s) & (mag >= shift(*a)) & (mag >= shift(*b))
    mag = np.where(keep, mag, 0)
    # hysteresis: strong edges, then weak ones that touch them, grown until nothing changes
    strong, weak = mag >= high, mag >= low
    edges = strong
    for _ in range(h * w):  # bounded: each round adds at least one pixel or stops
        q = np.pad(edges, 1)
        near = [q[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        grown = weak & np.any(near, axis=0)
        if (grown == edges).all():
            break
        edges = grown
    out = np.where(edges, 255, 0).astype(np.uint8)
    return Image.fromarray(out).convert("RGB")
