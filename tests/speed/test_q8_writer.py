"""The benchmarks quantise Q8_0 in torch (seconds on a GPU, not ~70 s in numpy); it must give gguf's bytes exactly."""

import numpy as np
import torch

from zturbo.benchmark.randmodel import quantize_q8_0


def test_torch_q8_0_matches_gguf_bytes():
    import gguf

    g = torch.Generator().manual_seed(0)
    w = (torch.randn(48, 256, generator=g) * torch.logspace(-3, 1, 256)).to(torch.bfloat16)
    w[3, :32] = 0  # an all-zero block: scale 0
    w[5, :32] = torch.linspace(-1, 1, 32)  # values landing on .5 after scaling: the rounding rule shows
    want = gguf.quants.quantize(w.float().numpy(), gguf.GGMLQuantizationType.Q8_0)
    got = quantize_q8_0(w)
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.array_equal(got, want)
