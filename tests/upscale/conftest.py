"""Random-weight upscalers of real spandrel architectures, saved the ways users get them."""

import numpy as np
import pytest
import torch
from PIL import Image


def _arch(name):
    from zturbo.upscale import import_spandrel

    import_spandrel()  # through zturbo's import (it copes with a torchvision built for another torch)
    if name == "Compact":
        from spandrel.architectures.Compact import Compact

        return Compact(num_feat=16, num_conv=4, upscale=2)
    if name == "ESRGAN":
        from spandrel.architectures.ESRGAN import ESRGAN

        return ESRGAN(num_filters=8, num_blocks=1, scale=4)
    if name == "SPAN":
        from spandrel.architectures.SPAN import SPAN

        return SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=2)
    raise KeyError(name)


@pytest.fixture(scope="session")
def model_files(tmp_path_factory):
    """{arch: {".safetensors": path, ".pth": path}} for Compact (2x), ESRGAN (4x), SPAN (2x)."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("upscalers")
    out = {}
    for name in ("Compact", "ESRGAN", "SPAN"):
        torch.manual_seed(0)
        sd = {k: v.contiguous() for k, v in _arch(name).state_dict().items()}
        st, pth = root / f"tiny-{name}.safetensors", root / f"tiny-{name}.pth"
        save_file(sd, st)
        torch.save(sd, pth)
        out[name] = {".safetensors": st, ".pth": pth}
    return out


@pytest.fixture(scope="session")
def compact(model_files):
    return model_files["Compact"][".safetensors"]


def _gradient(w=128, h=96):
    """A smooth RGB gradient: any seam or tile-edge artefact stands out against it."""
    x = np.linspace(0.1, 0.9, w)[None, :].repeat(h, 0)
    y = np.linspace(0.1, 0.9, h)[:, None].repeat(w, 1)
    rgb = np.stack([x, y, (x + y) / 2], axis=-1)
    return Image.fromarray((rgb * 255).round().astype(np.uint8))


@pytest.fixture(scope="session")
def gradient():
    return _gradient
