"""Image metrics computed from pixels alone (numpy; no weights, no network), shared by the report and
zturbo bench --quality.

SSIM is written here rather than imported: scikit-image would bring scipy, imageio and tifffile
(~60 MB) for one function. It follows Wang et al. 2004 with scikit-image's defaults (7x7 uniform
window, sample covariance, K1 0.01, K2 0.03, mean over the windows that fit), so the numbers
match `skimage.metrics.structural_similarity(..., data_range=1)` on greyscale.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03
CLIP_LOW, CLIP_HIGH = 1, 254  # 0..255 levels at or beyond these count as crushed / blown
DRIFT_GRID = 8  # composition drift compares the frames shrunk to 8x8 cells
DUP_WORK_SIDE = 128  # duplication search runs on a copy this many pixels on its long side
DUP_MIN_SHIFT = 0.2  # ... at offsets of at least this fraction of the side (not the trivial near-zero lag)
DUP_MIN_OVERLAP = 0.25  # ... where the shifted copies still overlap by this fraction of the area
DIVERSITY_SIDE = 256  # seed diversity compares frames at this long side: composition, not pixel noise,
# and 8 seeds x 2 shapes stay cheap (SSIM at 1 MP takes ~0.5 s a pair)


def as_float(image: Image.Image) -> np.ndarray:
    """RGB as float64 in 0..1, shape (h, w, 3)."""
    return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def luminance(image: Image.Image | np.ndarray) -> np.ndarray:
    """Rec. 601 luma in 0..1, shape (h, w)."""
    rgb = as_float(image) if isinstance(image, Image.Image) else image
    return rgb @ np.array([0.299, 0.587, 0.114])


def same_size(a: Image.Image, b: Image.Image) -> Image.Image:
    """`b` resized to `a`'s size when they differ (for frames of one sweep at different sizes)."""
    return b if b.size == a.size else b.convert("RGB").resize(a.size, Image.Resampling.LANCZOS)


def _window_sums(x: np.ndarray, k: int) -> np.ndarray:
    """Sum of every k x k window that fits inside x (an integral image: O(pixels))."""
    c = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def ssim(a: Image.Image, b: Image.Image) -> float:
    """Structural similarity of the two frames' luminance: 1 = identical."""
    x, y = luminance(a), luminance(same_size(a, b))
    k = SSIM_WINDOW
    if min(x.shape) < k:
        raise ValueError(f"images must be at least {k}x{k} pixels for SSIM, got {x.shape[1]}x{x.shape[0]}")
    n = k * k
    mx, my = _window_sums(x, k) / n, _window_sums(y, k) / n
    cov = n / (n - 1)  # sample covariance, as scikit-image
    vx = cov * (_window_sums(x * x, k) / n - mx * mx)
    vy = cov * (_window_sums(y * y, k) / n - my * my)
    vxy = cov * (_window_sums(x * y, k) / n - mx * my)
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def psnr(a: Image.Image, b: Image.Image) -> float:
    """Peak signal-to-noise ratio in dB over RGB; math.inf for identical frames."""
    mse = float(np.mean((as_float(a) - as_float(same_size(a, b))) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def mad(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference over RGB, in 0..255 levels."""
    return float(np.mean(np.abs(as_float(a) - as_float(same_size(a, b))))) * 255


def rms_contrast(image: Image.Image) -> float:
    """Standard deviation of luminance (0..0.5): the "contrast knob" number."""
    return float(luminance(image).std())


def mean_saturation(image: Image.Image) -> float:
    """Mean HSV saturation, 0 (grey) .. 1 (pure colour)."""
    return float(np.asarray(image.convert("RGB").convert("HSV"))[..., 1].mean() / 255)


def clipped_fraction(image: Image.Image) -> float:
    """Fraction of pixels with a channel crushed to black or blown to white."""
    rgb = np.asarray(image.convert("RGB"))
    return float(((rgb <= CLIP_LOW) | (rgb >= CLIP_HIGH)).any(axis=2).mean())


def _laplacian(x: np.ndarray) -> np.ndarray:
    return 4 * x[1:-1, 1:-1] - x[:-2, 1:-1] - x[2:, 1:-1] - x[1:-1, :-2] - x[1:-1, 2:]


def hf_energy_per_mp(image: Image.Image) -> float:
    """Detail per megapixel: summed squared Laplacian of luminance / million pixels."""
    lap = _laplacian(luminance(image))
    return float((lap**2).sum() / (image.width * image.height / 1e6))


def composition_drift(a: Image.Image, b: Image.Image) -> float:
    """Low-resolution difference (0..1): both frames shrunk to an 8x8 grid of mean luminance.
    Fine detail and quantization noise vanish at that scale; a moved subject does not."""
    g = (DRIFT_GRID, DRIFT_GRID)
    la = luminance(a.convert("RGB").resize(g, Image.Resampling.BOX))
    lb = luminance(b.convert("RGB").resize(g, Image.Resampling.BOX))
    return float(np.abs(la - lb).mean())


def _correlate(x: np.ndarray, y: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Linear cross-correlation sum_p x(p) y(p+d) for every shift d, via zero-padded FFTs."""
    fx, fy = np.fft.rfft2(x, shape), np.fft.rfft2(y, shape)
    return np.fft.irfft2(np.conj(fx) * fy, shape)


def duplication_score(image: Image.Image) -> float:
    """Self-similarity between regions (0..1): the highest normalised correlation between the
    image's detail and a copy of itself shifted by at least a fifth of its size. A repeated
    subject or tiled texture scores near 1; a single subject scores low."""
    im = image.convert("RGB")
    scale = DUP_WORK_SIDE / max(im.size)
    if scale < 1:
        im = im.resize((max(8, round(im.width * scale)), max(8, round(im.height * scale))), Image.Resampling.BOX)
    lum = luminance(im)
    blur = np.asarray(Image.fromarray((lum * 255).astype(np.uint8)).resize(
        (max(1, im.width // 8), max(1, im.height // 8)), Image.Resampling.BOX
    ).resize(im.size, Image.Resampling.BILINEAR), dtype=np.float64) / 255
    x = lum - blur  # detail only: lighting gradients would correlate at every shift
    h, w = x.shape
    shape = (2 * h, 2 * w)
    ones = np.ones_like(x)
    num = _correlate(x, x, shape)
    e_from = _correlate(x * x, ones, shape)  # energy of x over the overlap, at its origin side
    e_to = _correlate(ones, x * x, shape)  # ... and at the shifted side
    overlap = _correlate(ones, ones, shape)
    ncc = num / np.sqrt(np.maximum(e_from * e_to, 1e-12))
    dy = np.fft.fftfreq(shape[0], 1 / shape[0])[:, None]
    dx = np.fft.fftfreq(shape[1], 1 / shape[1])[None, :]
    far = (np.abs(dy) >= DUP_MIN_SHIFT * h) | (np.abs(dx) >= DUP_MIN_SHIFT * w)
    valid = far & (overlap >= DUP_MIN_OVERLAP * h * w - 0.5)
    if not valid.any() or float((x * x).sum()) < 1e-9:
        return 0.0
    return float(np.clip(ncc[valid].max(), 0.0, 1.0))


def _shrink(image: Image.Image, side: int) -> Image.Image:
    scale = side / max(image.size)
    if scale >= 1:
        return image
    return image.convert("RGB").resize((max(8, round(image.width * scale)), max(8, round(image.height * scale))),
                                       Image.Resampling.BOX)


def pairwise_diversity(images: list[Image.Image]) -> np.ndarray:
    """Symmetric matrix of 1 - SSIM between every pair (0 on the diagonal), at DIVERSITY_SIDE."""
    images = [_shrink(im, DIVERSITY_SIDE) for im in images]
    n = len(images)
    m = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            m[i, j] = m[j, i] = 1 - ssim(images[i], images[j])
    return m
