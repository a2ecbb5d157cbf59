"""--control-type canny: thin white edges where the picture changes, black elsewhere."""

import numpy as np
from PIL import Image

from zturbo.canny import canny


def test_a_square_gives_its_outline():
    a = np.zeros((64, 64), np.uint8)
    a[16:48, 16:48] = 255
    edges = np.asarray(canny(Image.fromarray(a).convert("RGB")))
    assert edges.shape == (64, 64, 3) and set(np.unique(edges)) == {0, 255}
    on = edges[..., 0] == 255
    assert on[14:18, 20:44].any(axis=0).all() and on[46:50, 20:44].any(axis=0).all()  # top and bottom sides
    assert on[20:44, 14:18].any(axis=1).all() and on[20:44, 46:50].any(axis=1).all()  # left and right sides
    assert not on[22:42, 22:42].any() and not on[:10].any()  # flat areas have no edges
    assert on.sum() < 4 * 32 * 3  # thin lines (non-maximum suppression), not bands


def test_a_flat_image_has_no_edges():
    assert not np.asarray(canny(Image.new("RGB", (32, 48), (120, 30, 200)))).any()
