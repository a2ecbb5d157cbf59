"""PNG encoding on every core.

Written by hand because no installed library does it: Pillow filters and deflates on one thread, which
costs 0.1-0.2 s for a 1 MP image, a fifth of a --fast image (bench/speed_H200.json). Here the rows are
Paeth-filtered with numpy and deflated in strips on a thread pool (numpy and zlib release the GIL); the
strips join into ONE standard zlib stream the way pigz does it: each strip but the last ends on a byte
boundary (Z_SYNC_FLUSH) and is primed with the previous 32 KiB as its dictionary, so the file is an
ordinary PNG of about Pillow's size that every reader opens.
"""

from __future__ import annotations

import os
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type (grey, grey+alpha, RGB, RGBA)
_WINDOW = 32 * 1024  # deflate's window: the dictionary that primes the next strip
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1), thread_name_prefix="zturbo-png")
    return _POOL


def _forget_pool() -> None:
    global _POOL
    _POOL = None  # a forked child has none of the parent's threads: it makes its own pool


os.register_at_fork(after_in_child=_forget_pool)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth_rows(pixels: np.ndarray, r0: int, r1: int) -> bytes:
    """Rows r0..r1-1 with filter type 4 (Paeth), each prefixed by its filter byte (PNG spec 9.4)."""
    h, w, ch = pixels.shape
    x = pixels[r0:r1].reshape(r1 - r0, w * ch).astype(np.int16)
    up = pixels[r0 - 1:r1 - 1] if r0 > 0 else np.concatenate([np.zeros((1, w, ch), np.uint8), pixels[r0:r1 - 1]])
    b = up.reshape(r1 - r0, w * ch).astype(np.int16)
    a = np.zeros_like(x)
    a[:, ch:] = x[:, :-ch]
    c = np.zeros_like(b)
    c[:, ch:] = b[:, :-ch]
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    out = np.empty((r1 - r0, w * ch + 1), np.uint8)
    out[:, 0] = 4
    out[:, 1:] = (x - pred).astype(np.uint8)  # modulo 256, as the spec says
    return out.tobytes()


def _deflate(raw: bytes, prime: bytes, level: int, last: bool) -> bytes:
    comp = zlib.compressobj(level, zlib.DEFLATED, -15, zdict=prime) if prime else zlib.compressobj(level, zlib.DEFLATED, -15)
    return comp.compress(raw) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


def encode_png(pixels: np.ndarray, text: dict[str, str] | None = None, level: int = 6) -> bytes:
    """PNG bytes of an 8-bit (H, W) or (H, W, C) array, C in 1..4, with `text` as iTXt chunks (UTF-8)."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png takes uint8 pixels, not {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    h, w, ch = pixels.shape
    pixels = np.ascontiguousarray(pixels)
    pool = _pool()
    # ~1 strip per worker and then some, so one slow strip does not hold the rest up; >= 16 rows each
    n = max(1, min(h // 16, 2 * pool._max_workers))
    bounds = [h * i // n for i in range(n + 1)]
    raws = list(pool.map(lambda i: _paeth_rows(pixels, bounds[i], bounds[i + 1]), range(n)))
    primes = [b""] + [r[-_WINDOW:] for r in raws[:-1]]
    parts = list(pool.map(lambda i: _deflate(raws[i], primes[i], level, i == n - 1), range(n)))
    adler = 1
    for r in raws:
        adler = zlib.adler32(r, adler)
    stream = b"\x78\x9c" + b"".join(parts) + struct.pack(">I", adler)
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPE[ch], 0, 0, 0))]
    for key, value in (text or {}).items():
        out.append(_chunk(b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + value.encode("utf-8")))
    out += [_chunk(b"IDAT", stream), _chunk(b"IEND", b"")]
    return b"".join(out)
