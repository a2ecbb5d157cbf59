"""K-quant writer: gguf's own dequantizer and diffusers' loader read back what we wrote."""

import gguf
import numpy as np
import pytest
import torch

from zturbo import Engine, GenerationParams
from zturbo.models import gguf as gguf_files
from zturbo.models import kquants

# relative L2 error on Gaussian weights: the bits set the floor (2-bit is coarse, 6-bit is fine)
BOUNDS = {"Q2_K": (0.15, 0.45), "Q4_K": (0.02, 0.12), "Q6_K": (0.005, 0.03)}


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((24, 512)).astype(np.float32) * 0.02
    w[3] += 0.05  # a row that is all positive: the min must still be representable
    w[5] = 0.0  # an all-zero row must not divide by zero
    return w


@pytest.mark.parametrize("qtype", kquants.TYPES)
def test_round_trip_through_gguf_dequantize(weights, qtype):
    raw = kquants.quantize(weights, qtype)
    t = gguf.GGMLQuantizationType[qtype]
    assert raw.dtype == np.uint8 and raw.shape == gguf.quants.quant_shape_to_byte_shape(weights.shape, t)
    back = gguf.quants.dequantize(raw, t)
    assert back.shape == weights.shape
    lo, hi = BOUNDS[qtype]
    rel = np.linalg.norm(back - weights) / np.linalg.norm(weights)
    assert lo < rel < hi, rel
    assert np.all(back[5] == 0)


def test_fewer_bits_more_error(weights):
    errs = [np.linalg.norm(gguf.quants.dequantize(kquants.quantize(weights, q), gguf.GGMLQuantizationType[q]) - weights)
            for q in ("Q6_K", "Q4_K", "Q2_K")]
    assert errs[0] < errs[1] < errs[2]


@pytest.mark.parametrize("qtype", kquants.TYPES)
def test_diffusers_dequantizer_agrees_with_gguf(weights, qtype):
    from diffusers.quantizers.gguf.utils import GGUFParameter, dequantize_gguf_tensor

    raw = kquants.quantize(weights, qtype)
    t = gguf.GGMLQuantizationType[qtype]
    ours = dequantize_gguf_tensor(GGUFParameter(torch.from_numpy(raw), quant_type=t)).float().numpy()
    ref = gguf.quants.dequantize(raw, t)
    # diffusers multiplies the scales out in float16: equal up to half-precision rounding
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-3 * np.abs(ref).max())


def test_rows_shorter_than_a_super_block_take_llama_cpp_fallback():
    assert kquants.fallback_type("Q2_K", 64) == "Q4_0" and kquants.fallback_type("Q2_K", 512) == "Q2_K"
    with pytest.raises(ValueError, match="multiple of 256"):
        kquants.quantize(np.zeros((2, 64), np.float32), "Q4_K")


@pytest.mark.parametrize("quant,qtype", [("q2", "Q2_K"), ("q4", "Q4_K")])
def test_tiny_k_quant_file_loads_and_generates(quant, qtype):
    engine = Engine.load(model="tiny", quant=quant, device="cpu")
    assert engine.info.weights_file.endswith(f"tiny-{qtype}.gguf")
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(engine.info.weights_file).tensors}
    # the DiT's matrices (rows of 256, like the real model's 3840) get the K-quant itself ...
    assert types["layers.0.attention.qkv.weight"] == qtype
    assert types["layers.0.feed_forward.w1.weight"] == qtype
    # ... and the caption embedder's rows of 32 take llama.cpp's fallback type
    assert types["cap_embedder.1.weight"] == kquants.FALLBACK[qtype]
    result = engine.generate(GenerationParams(prompt="a robot", seed=1, width=64, height=64, rng="cpu", steps=2))
    assert result.recipes[0]["model"]["quant"] == quant
    assert np.asarray(result.image).std() > 0


def test_write_gguf_rejects_unknown_type(tmp_path):
    with pytest.raises(ValueError, match="quant must be one of"):
        gguf_files.write_gguf({}, tmp_path / "x.gguf", "Q3_K")
