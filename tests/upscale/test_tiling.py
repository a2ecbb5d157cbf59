"""Tiling: equal to the untiled output within a level or two of 255, and no seam on a gradient."""

import numpy as np
import pytest
import torch
from PIL import Image

from zturbo.upscale import Upscaler, spans, tile_for_memory


@pytest.fixture(scope="module")
def up(compact):
    return Upscaler.load(compact, device="cpu")


def _out(up, image, **kw):
    return np.asarray(up.upscale(image, **kw).image, dtype=np.float64)


def _seam_steps(tiled, whole, edges, axis):
    """How much the tiled image's step across each tile edge differs from the untiled image's (0..255)."""
    d_t, d_w = np.diff(tiled, axis=axis), np.diff(whole, axis=axis)
    idx = [e - 1 for e in edges]
    take = (lambda a: a[:, idx]) if axis == 1 else (lambda a: a[idx, :])
    # mean over channels, then over the edge's length: a seam is a step along the whole edge
    return np.abs((take(d_t) - take(d_w)).mean(axis=2)).mean(axis=1 - axis)


def _edges(length, tile, overlap, scale):
    return sorted({c * scale for s, e in spans(length, tile, overlap) for c in (s, e) if 0 < c < length})


def test_tiled_equals_untiled_within_tolerance(up, gradient):
    image = gradient(128, 96)
    whole = _out(up, image, tile=0)
    tiled = _out(up, image, tile=64, overlap=32)
    assert up.upscale(image, tile=64, overlap=32).record["tiles"] == 3 * 2
    assert np.abs(tiled - whole).max() <= 2  # levels of 255: invisible


def test_no_seam_on_a_gradient_and_the_check_can_fail(up, gradient):
    image = gradient(144, 96)  # 3 x 2 tiles of 48 that abut exactly when there is no overlap
    whole = _out(up, image, tile=0)
    blended = _out(up, image, tile=48, overlap=16)
    naive = _out(up, image, tile=48, overlap=0)  # abutting tiles, no blending: the seams a user would see
    for axis, length in ((1, 144), (0, 96)):
        assert _seam_steps(blended, whole, _edges(length, 48, 16, 2), axis).max() < 0.5
        assert _seam_steps(naive, whole, _edges(length, 48, 0, 2), axis).min() > 1.0


def test_tiles_cover_the_image_with_the_overlap():
    for length, tile, overlap in ((1000, 256, 32), (257, 256, 32), (64, 256, 32), (300, 100, 0)):
        w = spans(length, tile, overlap)
        assert w[0][0] == 0 and w[-1][1] == length and all(e - s <= tile for s, e in w)
        assert all(a[1] - b[0] >= overlap for a, b in zip(w, w[1:]))


def test_tile_size_follows_free_memory():
    mib = 1 << 20
    small, large = tile_for_memory(1024 * mib, 20_000), tile_for_memory(16 * 1024 * mib, 20_000)
    assert 64 <= small < large <= 2048 and small % 16 == 0
    assert small * small * 20_000 <= 0.5 * 1024 * mib  # within the budget
    assert tile_for_memory(1 * mib, 20_000) == 64  # never below the minimum: it then halves on OOM


def test_auto_tile_on_cpu_keeps_small_images_whole(up, gradient):
    assert up.auto_tile(128, 96) is None
    out = up.upscale(gradient(128, 96))
    assert out.record["tiles"] == 1 and out.image.size == (256, 192)


def test_rgba_keeps_its_alpha(up, gradient):
    image = gradient(32, 32).convert("RGBA")
    alpha = np.zeros((32, 32), np.uint8)
    alpha[:, 16:] = 255
    image.putalpha(Image.fromarray(alpha))
    out = up.upscale(image, tile=0).image
    assert out.mode == "RGBA" and out.size == (64, 64)
    a = np.asarray(out)[..., 3]
    assert a[:, :28].max() < 20 and a[:, 36:].min() > 235


class _SmallCard(Upscaler):
    """An upscaler whose device runs out of memory above 80-pixel tiles, as a small card would."""

    def _run(self, x):
        if max(x.shape[-2:]) > 80:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return super()._run(x)


def test_out_of_memory_halves_the_tile_and_still_matches(up, gradient):
    small = _SmallCard(up.descriptor, up.info, up.device, up.dtype)
    image = gradient(128, 96)
    out = small.upscale(image, tile=0, overlap=16)  # the whole image does not fit: 128 -> 64-pixel tiles
    assert out.record["tile"] == 64 and out.record["tiles"] > 1
    whole = np.asarray(up.upscale(image, tile=0).image, dtype=int)
    assert np.abs(np.asarray(out.image, dtype=int) - whole).max() <= 2


def test_palette_transparency_survives(up):
    image = Image.new("P", (20, 10))
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.info["transparency"] = 0
    out = up.upscale(image, tile=0).image
    assert out.mode == "RGBA" and out.size == (40, 20) and np.asarray(out)[..., 3].max() == 0
