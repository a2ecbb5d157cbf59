"""Input images for the tests: noise photos, masks, a header-only bomb."""

import struct
import zlib

import numpy as np
from PIL import Image


def noise_image(path, width=64, height=48, seed=0, **save):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, **save)
    return path


def half_mask(path, width=64, height=48):
    """White (repaint) on the right half, black (keep) on the left."""
    m = np.zeros((height, width), np.uint8)
    m[:, width // 2:] = 255
    Image.fromarray(m).save(path)
    return path


def png_header_only(path, width, height):
    """A PNG whose header claims width x height and whose pixel data is a few bytes: a decompression bomb
    as far as any reader that trusts the header can tell."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path
