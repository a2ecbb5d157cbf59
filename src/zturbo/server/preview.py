"""A pass preview without the VAE: the latents' three main directions as false-colour RGB.

Decoding every pass with the VAE would cost as much as the pass itself at 1 MP. Projecting the
16 latent channels on their first three principal components shows the layout forming for almost
nothing (a 16x16 eigenproblem). Colours are false colours; the final image is the real decode.

The worker only takes a Snapshot of each pass (a copy to the host queued on the GPU's stream, no
sync): the preview is drawn later, by whoever reads it, so passes run back to back on the GPU.
"""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import torch
from PIL import Image

from .. import defaults


def latents_to_rgb(latents: torch.Tensor) -> np.ndarray:
    """(1, C, h, w) or (C, h, w) latents -> (h, w, 3) uint8."""
    x = latents.detach().float().cpu()
    if x.ndim == 4:
        x = x[0]
    c, h, w = x.shape
    flat = x.reshape(c, -1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    flat = torch.nan_to_num(flat)
    cov = flat @ flat.T / max(1, flat.shape[1] - 1)
    _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
    comps = vecs[:, -3:].flip(1) if c >= 3 else torch.eye(c, 3)
    # an eigenvector's sign is arbitrary: fix it so the colours do not flip between passes
    signs = torch.sign(comps.sum(dim=0))
    comps = comps * torch.where(signs == 0, torch.ones_like(signs), signs)
    rgb = (comps.T @ flat).reshape(3, h, w)
    lo = torch.quantile(rgb.reshape(3, -1), 0.02, dim=1).reshape(3, 1, 1)
    hi = torch.quantile(rgb.reshape(3, -1), 0.98, dim=1).reshape(3, 1, 1)
    rgb = ((rgb - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)


def preview_data_url(latents: torch.Tensor, max_side: int = defaults.SERVER_PREVIEW_PX) -> str:
    """A small JPEG data URL of the latents (one latent pixel = 8 image pixels, upscaled smoothly)."""
    im = Image.fromarray(latents_to_rgb(latents))
    scale = max_side / max(im.size)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class Snapshot:
    """A pass's latents on their way to the host; data_url() draws the preview when first asked."""

    def __init__(self, latents: torch.Tensor):
        latents = latents.detach()
        self._ready = None
        if latents.is_cuda:  # a pinned copy queued behind this pass; the event marks its end
            self._tensor = latents.to("cpu", non_blocking=True)
            self._ready = torch.cuda.Event()
            self._ready.record()
        else:  # the pipeline makes new latents each pass: this tensor is never written again
            self._tensor = latents.cpu()
        self._url: str | None = None
        self._lock = threading.Lock()

    def data_url(self) -> str:
        with self._lock:  # two readers of one pass draw it once
            if self._url is None:
                if self._ready is not None:
                    self._ready.synchronize()  # waits for this pass only, never for later work on the GPU
                self._url = preview_data_url(self._tensor)
                self._tensor = self._ready = None
            return self._url
