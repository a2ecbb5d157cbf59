"""The multi-threaded PNG writer: a standard PNG any reader opens, same pixels, text chunks intact."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from zturbo.pngwrite import encode_png


def _chunks(data: bytes):
    pos = 8
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body), kind
        yield kind, body
        pos += 12 + n


@pytest.mark.parametrize("shape", [(1, 1, 3), (17, 5, 3), (64, 48, 4), (33, 20), (40, 31, 2), (300, 257, 3)])
def test_round_trip_is_exact_and_the_zlib_stream_checks(shape):
    rng = np.random.default_rng(0)
    # half smooth, half noise: both kinds of row go through the filter
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    pixels[: shape[0] // 2] = np.arange(shape[1], dtype=np.uint8)[None, :, None].squeeze(-1) if len(shape) == 2 \
        else np.arange(shape[1], dtype=np.uint8)[None, :, None]
    data = encode_png(pixels, {"zturbo": '{"prompt": "a robot — ünïcode"}', "parameters": "a robot\nSteps: 9"})
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert np.array_equal(np.asarray(im), pixels)
        assert im.text == {"zturbo": '{"prompt": "a robot — ünïcode"}', "parameters": "a robot\nSteps: 9"}
    # zlib.decompress checks the Adler-32 that Pillow skips: the strips form one valid stream
    idat = b"".join(body for kind, body in _chunks(data) if kind == b"IDAT")
    raw = zlib.decompress(idat)
    channels = 1 if len(shape) == 2 else shape[2]
    assert len(raw) == shape[0] * (shape[1] * channels + 1)


def test_size_is_close_to_pillows_on_a_smooth_image():
    y, x = np.mgrid[0:512, 0:512]
    img = np.stack([(x + y) // 4, (x * y) // 1024, 128 + 60 * np.sin(x / 20)], -1).astype(np.uint8)
    ours = len(encode_png(img))
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    assert ours < 1.15 * len(buf.getvalue())


def test_rejects_non_8_bit_pixels():
    with pytest.raises(ValueError, match="uint8"):
        encode_png(np.zeros((4, 4, 3), np.float32))


def test_a_forked_child_can_still_write():
    import os

    pixels = np.arange(64 * 64 * 3, dtype=np.uint32).astype(np.uint8).reshape(64, 64, 3)
    encode_png(pixels)  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # child: the pool's threads did not survive the fork
        import signal

        signal.alarm(30)  # a child stuck on a dead pool is killed, so the test fails instead of hanging
        ok = np.array_equal(np.asarray(Image.open(io.BytesIO(encode_png(pixels)))), pixels)
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
