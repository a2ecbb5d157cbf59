"""Image sizes: parsing, the 16-pixel grid, and aspect ratio x megapixels presets.

Both sides must be multiples of 16: the Flux VAE downsamples 8x and the DiT patchifies 2x2
(article Part 3, Step 4). User-typed sizes are never "fixed" silently; presets snap by design.
"""

from __future__ import annotations

import math
import re
import reprlib

from . import defaults
from .errors import InvalidParams

_SIZE_RE = re.compile(r"^\s*(\d+)\s*[xX×*]\s*(\d+)\s*$")


def nearest_multiples(value: int, multiple: int = defaults.SIZE_MULTIPLE) -> tuple[int, int]:
    """The valid values just below and just above `value` (equal when `value` is valid)."""
    lower = max(multiple, (value // multiple) * multiple)
    upper = max(multiple, -(-value // multiple) * multiple)
    return lower, upper


def check_side(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidParams(f"{name} must be a whole number of pixels, got {value!r}")
    if value <= 0:
        raise InvalidParams(f"{name} must be positive, got {value}")
    if value > defaults.MAX_SIDE:
        raise InvalidParams(f"{name} {reprlib.repr(value)} is above the model's {defaults.MAX_SIDE} px per side "
                            f"(its position table holds {defaults.MAX_SIDE // defaults.SIZE_MULTIPLE} patches of 16 px)")
    m = defaults.SIZE_MULTIPLE
    if value % m:
        lo, hi = nearest_multiples(value, m)
        raise InvalidParams(
            f"{name} {value} is not a multiple of {m} (VAE 8x × patch 2): use {lo} or {hi}"
        )


def check_size(width: int, height: int, max_megapixels: float = defaults.MAX_MEGAPIXELS) -> None:
    check_side("width", width)
    check_side("height", height)
    mp = width * height / defaults.MEGAPIXEL  # sides <= MAX_SIDE: no float overflow
    if mp > max_megapixels + 1e-9:
        raise InvalidParams(
            f"{width}x{height} is {mp:.2f} MP, above the {max_megapixels:g} MP cap "
            f"(1 MP = 1024x1024); pass --max-megapixels {math.ceil(mp)} to allow it"
        )


def parse_size(text: str) -> tuple[int, int]:
    """'1280x720' -> (1280, 720): width first, as everywhere in zturbo."""
    m = _SIZE_RE.match(text)
    if not m:
        raise InvalidParams(f"size {reprlib.repr(text)} is not WIDTHxHEIGHT, e.g. 1024x1024 or 720x1280")
    try:
        return int(m.group(1)), int(m.group(2))
    except ValueError:  # over Python's 4,300-digit limit for int()
        raise InvalidParams(f"size {reprlib.repr(text)} has a side thousands of digits long: "
                            "give WIDTHxHEIGHT in pixels, e.g. 1024x1024") from None


def parse_aspect(text: str) -> float:
    """'16:9' -> 1.777..., '1.5' -> 1.5 (width / height)."""
    try:
        if ":" in text:
            a, b = text.split(":", 1)
            ratio = float(a) / float(b)
        else:
            ratio = float(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidParams(f"aspect {text!r} is not W:H (e.g. 16:9) or a number (e.g. 1.5)") from None
    if not math.isfinite(ratio) or ratio <= 0:
        raise InvalidParams(f"aspect {text!r} must be a positive ratio")
    return ratio


def size_for_aspect(aspect: str | float, megapixels: float = 1.0) -> tuple[int, int]:
    """Width and height with the given ratio and ~megapixels, each snapped to the 16-pixel grid."""
    ratio = parse_aspect(aspect) if isinstance(aspect, str) else float(aspect)
    if not math.isfinite(megapixels) or megapixels <= 0:
        raise InvalidParams(f"megapixels must be positive, got {megapixels}")
    pixels = megapixels * defaults.MEGAPIXEL
    m = defaults.SIZE_MULTIPLE
    width = max(m, round(math.sqrt(pixels * ratio) / m) * m)
    height = max(m, round(math.sqrt(pixels / ratio) / m) * m)
    return width, height
