"""Each report metric on synthetic images whose answer is known."""

import math

import numpy as np
import pytest
from PIL import Image, ImageFilter

from zturbo import metrics as M


def img(a) -> Image.Image:
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=2)
    return Image.fromarray(a.astype(np.uint8))


rng = np.random.default_rng(0)
NOISE = img(rng.integers(0, 256, (64, 96, 3)))


def test_identical_frames_are_at_zero_distance():
    assert M.ssim(NOISE, NOISE) == pytest.approx(1.0)
    assert M.psnr(NOISE, NOISE) == math.inf
    assert M.mad(NOISE, NOISE) == 0
    assert M.composition_drift(NOISE, NOISE) == 0


def test_ssim_of_flat_frames_follows_the_closed_form():
    # flat x=0.2, y=0.6: no variance, so SSIM = (2xy + C1) / (x^2 + y^2 + C1)
    a, b = img(np.full((32, 32), 51)), img(np.full((32, 32), 153))
    c1 = 0.01**2
    x, y = 51 / 255, 153 / 255
    assert M.ssim(a, b) == pytest.approx((2 * x * y + c1) / (x * x + y * y + c1), rel=1e-6)


def test_psnr_and_mad_of_a_known_offset():
    a, b = img(np.zeros((16, 16))), img(np.full((16, 16), 51))  # 0.2 everywhere
    assert M.psnr(a, b) == pytest.approx(10 * math.log10(1 / 0.04))
    assert M.mad(a, b) == pytest.approx(51)


def test_ssim_ranks_sharp_vs_blurred_and_light_noise():
    blurred = NOISE.filter(ImageFilter.GaussianBlur(3))
    light = img(np.clip(np.asarray(NOISE, dtype=int) + rng.integers(-4, 5, (64, 96, 3)), 0, 255))
    assert M.ssim(NOISE, light) > 0.95
    assert M.ssim(NOISE, blurred) < 0.5


def test_contrast_saturation_clipping():
    half = np.zeros((20, 20), dtype=np.uint8)
    half[:, 10:] = 255
    assert M.rms_contrast(img(half)) == pytest.approx(0.5, abs=1e-3)
    assert M.rms_contrast(img(np.full((20, 20), 128))) == 0
    assert M.mean_saturation(img(np.full((20, 20), 128))) == 0
    red = np.zeros((20, 20, 3), dtype=np.uint8)
    red[..., 0] = 200
    assert M.mean_saturation(img(red)) == pytest.approx(1.0)
    crushed = np.full((20, 20), 128, dtype=np.uint8)
    crushed[:10] = 0  # half the pixels crushed to black
    assert M.clipped_fraction(img(crushed)) == pytest.approx(0.5)
    assert M.clipped_fraction(img(np.full((20, 20), 128))) == 0


def test_detail_per_megapixel_drops_when_blurred():
    sharp = NOISE
    assert M.hf_energy_per_mp(sharp) > 10 * M.hf_energy_per_mp(sharp.filter(ImageFilter.GaussianBlur(2)))
    assert M.hf_energy_per_mp(img(np.full((32, 32), 90))) == pytest.approx(0, abs=1e-12)


def test_duplication_flags_a_repeated_tile_and_not_a_single_subject():
    from zturbo import defaults

    tile = rng.integers(0, 256, (64, 48, 3))
    twice = img(np.concatenate([tile, tile], axis=1))
    single = np.full((64, 96, 3), 200)
    single[16:48, 30:70] = rng.integers(0, 256, (32, 40, 3))  # one subject on a plain background
    assert M.duplication_score(twice) > 0.9 >= defaults.REPORT_DUPLICATION_FLAG
    assert M.duplication_score(img(single)) < defaults.REPORT_DUPLICATION_FLAG
    assert M.duplication_score(NOISE) < 0.3


def test_composition_drift_ignores_fine_noise_but_sees_a_moved_subject():
    scene = np.full((64, 64), 40)
    scene[8:40, 8:30] = 220  # a bright subject on the left
    noisy = np.clip(scene + rng.integers(-30, 31, scene.shape), 0, 255)
    moved = scene[:, ::-1]  # the subject on the right: a re-rolled composition
    assert M.ssim(img(scene), img(noisy)) < 0.5  # pixel-level metrics call the noise a big change...
    assert M.composition_drift(img(scene), img(noisy)) < 0.02  # ...the composition did not move
    assert M.composition_drift(img(scene), img(moved)) > 0.2


def test_pairwise_diversity_matrix():
    other = img(rng.integers(0, 256, (64, 96, 3)))
    m = M.pairwise_diversity([NOISE, NOISE, other])
    assert m.shape == (3, 3) and np.allclose(m, m.T) and np.allclose(np.diag(m), 0)
    assert m[0, 1] == pytest.approx(0, abs=1e-9)
    assert m[0, 2] > 0.9


def test_frames_of_different_sizes_are_compared_at_the_first_ones_size():
    small = NOISE.resize((48, 32))
    assert 0 < M.ssim(NOISE, small) < 1
    with pytest.raises(ValueError, match="at least 7x7"):
        M.ssim(img(np.zeros((4, 4))), img(np.zeros((4, 4))))
