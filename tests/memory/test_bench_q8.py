"""bench/memory.py quantises Q8_0 on the GPU in torch; it must give gguf's bytes exactly."""

import importlib.util
from pathlib import Path

import numpy as np
import torch


def test_torch_q8_0_matches_gguf_bytes():
    import gguf

    spec = importlib.util.spec_from_file_location("bench_memory", Path(__file__).parents[2] / "bench" / "memory.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(48, 256, generator=g) * torch.logspace(-3, 1, 256)).to(torch.bfloat16)
    w[3, :32] = 0  # an all-zero block: scale 0
    want = gguf.quants.quantize(w.float().numpy(), gguf.GGMLQuantizationType.Q8_0)
    got = bench.q8_0_bytes(w).numpy()
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.array_equal(got, want)
