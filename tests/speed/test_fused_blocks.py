"""The compiler-friendly block rewrite (real RoPE, fused QKV and gate+up): the same model, fewer kernels."""

import numpy as np
import torch

from zturbo import Engine
from zturbo.speed.fused import rewrite_blocks
from zturbo.benchmark.randmodel import build_transformer


def _forward(tr):
    g = torch.Generator().manual_seed(0)
    lat = [torch.randn(16, 1, 32, 48, generator=g)]
    cap = [torch.randn(37, tr.config.cap_feat_dim, generator=g)]
    return tr(lat, torch.tensor([0.4]), cap, return_dict=False)[0][0]


def test_real_rope_is_exact_and_fusing_keeps_the_output_and_the_size():
    tr = build_transformer("cpu", tiny=True).float()
    ref, params = _forward(tr), sum(p.numel() for p in tr.parameters())
    assert rewrite_blocks(tr, fuse=False) == 0
    assert torch.equal(_forward(tr), ref)  # the same float32 formula as torch's complex multiply
    blocks = rewrite_blocks(tr)
    assert blocks == len(tr.layers) + len(tr.noise_refiner) + len(tr.context_refiner)
    out = _forward(tr)
    assert ((out - ref).norm() / ref.norm()).item() < 1e-5  # only the GEMM summation order differs
    assert sum(p.numel() for p in tr.parameters()) == params  # the separate matrices are gone
    assert not any(hasattr(m, "to_q") or hasattr(m, "w1") for m in tr.modules())
    assert rewrite_blocks(tr) == blocks and torch.equal(_forward(tr), out)  # idempotent


def test_rewritten_engine_with_guidance_matches(small_params):
    """guidance > 0 batches two prompts of different lengths: the padding mask and RoPE padding still line up."""
    import dataclasses

    params = dataclasses.replace(small_params, guidance=2.0, negative_prompt="blurry, low quality, text")
    ref_engine = Engine.load(model="tiny", device="cpu")
    ref = ref_engine.generate(params)
    engine = Engine.load(model="tiny", device="cpu")
    rewrite_blocks(engine.pipe.transformer)
    got = engine.generate(params)
    a = np.asarray(got.images[0]).astype(int)
    b = np.asarray(ref.images[0]).astype(int)
    assert np.abs(a - b).max() <= 2  # 8-bit pixels: at most a rounding step or two apart
    assert got.passes == ref.passes and got.recipes[0]["model_evaluations"] == 2 * params.steps


def test_the_compiled_and_the_eager_rope_rotate_alike():
    """Compiled blocks rotate with real (cos, sin) arithmetic, eager ones with diffusers' complex multiply: the
    same rotation, to float32 rounding, on the tables real_rope_tables makes."""
    from zturbo.speed.fused import _rope, _rope_complex, _rope_real

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 40, 3, 32, generator=g).to(torch.bfloat16)
    angles = torch.rand(2, 40, 16, generator=g) * 6.3
    freqs = torch.view_as_real(torch.polar(torch.ones_like(angles), angles)).flatten(-2)
    real, cplx = _rope_real(x, freqs), _rope_complex(x, freqs)
    assert real.dtype == cplx.dtype == torch.bfloat16 and real.shape == x.shape
    assert (real.float() - cplx.float()).abs().max() <= 2 ** -7 * x.float().abs().max()  # a bf16 rounding step
    assert torch.equal(_rope(x, freqs), cplx)  # run eagerly: the complex multiply
    traced = torch.compile(_rope, backend="eager", fullgraph=True)
    assert torch.equal(traced(x, freqs), real)  # traced by Dynamo: the real arithmetic
