"""Upscaling on a real GPU (device machine only: pytest -m gpu tests/upscale). No timings here."""

import numpy as np
import pytest
import torch

from zturbo.upscale import Upscaler

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_gpu_half_precision_matches_cpu_fp32(compact, gradient):
    image = gradient(96, 64)
    cpu = np.asarray(Upscaler.load(compact, device="cpu").upscale(image, tile=0).image, dtype=int)
    for precision, dtype in (("auto", torch.bfloat16), ("fp16", torch.float16)):
        gpu = Upscaler.load(compact, device="cuda", precision=precision)
        assert gpu.dtype is dtype
        assert np.abs(np.asarray(gpu.upscale(image, tile=0).image, dtype=int) - cpu).max() <= 8


def test_4x_of_a_2mp_image_fits_a_small_card(tmp_path, gradient):
    """A full-size ESRGAN (64 filters, 23 blocks; random weights) under a 4 GiB cap, as on a small card."""
    from safetensors.torch import save_file

    from zturbo.upscale import import_spandrel

    import_spandrel()  # first: it copes with a torchvision built for another torch
    from spandrel.architectures.ESRGAN import ESRGAN
    path = tmp_path / "4x-esrgan.safetensors"
    save_file({k: v.contiguous() for k, v in ESRGAN().state_dict().items()}, path)
    cap = 4 << 30
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(0).total_memory)
    try:
        up = Upscaler.load(path, device="cuda")
        torch.cuda.reset_peak_memory_stats()
        out = up.upscale(gradient(1664, 1216))  # 2.02 MP
        assert out.image.size == (6656, 4864) and out.record["tiles"] > 1
        assert torch.cuda.max_memory_allocated() <= cap
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
