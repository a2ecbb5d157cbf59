"""Pass previews: the latents' layout shows through, cheaply, and bad latents never break a job."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from zturbo.server.preview import latents_to_rgb, preview_data_url


def test_layout_in_the_latents_shows_in_the_preview():
    g = torch.Generator().manual_seed(0)
    latents = 0.1 * torch.randn(1, 16, 32, 48, generator=g)
    direction = torch.randn(16, 1, 1, generator=g)
    latents[:, :, :, :24] += direction  # a left half that differs from the right half
    rgb = latents_to_rgb(latents).astype(float)
    assert rgb.shape == (32, 48, 3)
    left, right = rgb[:, :24].mean(axis=(0, 1)), rgb[:, 24:].mean(axis=(0, 1))
    assert np.abs(left - right).max() > 100  # of 255: plainly two regions


def test_preview_is_a_small_jpeg_even_for_nan_or_flat_latents():
    for latents in (torch.full((1, 16, 128, 128), float("nan")), torch.zeros(1, 16, 8, 8)):
        url = preview_data_url(latents)
        assert url.startswith("data:image/jpeg;base64,")
        im = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert max(im.size) == 96
