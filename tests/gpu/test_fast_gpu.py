"""--fast on a real GPU (device machine only: pytest -m gpu tests/gpu). No timings here: bench/ has them."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

KW = dict(height=128, width=128, num_inference_steps=4, guidance_scale=0.0, output_type="latent")


def _engine(**kw):
    from zturbo import Engine

    return Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, **kw)


def _latents(engine, prompt="a robot", seed=1, **kw):
    emb = [engine.encode_prompt(prompt).embeds]
    g = torch.Generator("cuda").manual_seed(seed)
    return engine.pipe(prompt_embeds=emb, generator=g, **{**KW, **kw}).images.float()


def _rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.fixture(scope="module")
def eager_latents():
    return _latents(_engine())


@pytest.fixture(scope="module")
def fast_engine():
    return _engine(fast=True)


def test_compile_alone_equals_eager_within_bf16_rounding(eager_latents):
    from zturbo.speed import apply_fast

    engine = _engine()
    features = apply_fast(engine.pipe, "lossless", attention=False)
    assert {f.name: f.on for f in features}["compile"]
    compiled = _latents(engine)
    assert torch.isfinite(compiled).all()
    assert _rel(compiled, eager_latents) < 1e-2  # bf16 has 8 bits of mantissa: ~4e-3 per rounding


def test_fast_is_lossless_within_bf16_rounding(fast_engine, eager_latents):
    on = {f.name: f for f in fast_engine.speed}
    assert on["compile"].on and on["cuda_graphs"].on and "fp8" not in on
    fast = _latents(fast_engine)
    assert torch.isfinite(fast).all()
    assert _rel(fast, eager_latents) < 1e-2  # the same bound as compile alone: bf16 rounding


def test_fp8_turns_on_fp8_and_stays_close(eager_latents):
    engine = _engine(fast="fp8")
    on = {f.name: f for f in engine.speed}
    assert on["compile"].on
    if torch.cuda.get_device_capability() >= (8, 9):
        assert on["fp8"].on, on["fp8"].detail
    fast = _latents(engine)
    assert torch.isfinite(fast).all()
    assert _rel(fast, eager_latents) < 0.1  # FP8 row-wise: bench/ records the real model's deviation


def test_no_recompile_when_a_size_repeats(fast_engine):
    from torch._dynamo.utils import counters

    for size in (128, 192):
        for prompt in ("a robot", "another prompt, of another length"):
            _latents(fast_engine, prompt, height=size, width=size)
            before = counters["stats"]["unique_graphs"]
            _latents(fast_engine, prompt, height=size, width=size)
            assert counters["stats"]["unique_graphs"] == before, f"recompiled at {size} for {prompt!r}"


def test_a_new_size_does_not_recompile_the_blocks(fast_engine):
    """Dynamic shapes: one compile serves every size (a sweep of 24 shapes must not compile 24 times)."""
    from torch._dynamo.utils import counters

    _latents(fast_engine, height=128, width=128)
    before = counters["stats"]["unique_graphs"]
    for h, w in ((160, 96), (256, 128), (96, 320)):
        _latents(fast_engine, height=h, width=w)
    assert counters["stats"]["unique_graphs"] == before


def test_cfg_runs_with_the_chosen_attention_backend(fast_engine):
    from zturbo import GenerationParams

    r = fast_engine.generate(GenerationParams(prompt="a robot", negative_prompt="blur, a much longer negative prompt",
                                              guidance=2.0, seed=3, width=128, height=128, steps=2))
    assert not r.recipes[0]["nan"] and r.passes == 2


def test_guidance_reuses_the_compiled_blocks_and_stays_lossless(fast_engine):
    """A batch of 2 (guidance > 0) runs one image at a time: no new compile, equal to plain within bf16 rounding."""
    from torch._dynamo.utils import counters

    def cfg(engine):
        neg = [engine.encode_prompt("blur, a much longer negative prompt than the prompt").embeds]
        return _latents(engine, seed=9, guidance_scale=3.0, negative_prompt_embeds=neg)

    _latents(fast_engine)  # the blocks compiled for this size
    before = counters["stats"]["unique_graphs"]
    fast = cfg(fast_engine)
    assert counters["stats"]["unique_graphs"] == before, "guidance > 0 compiled the blocks again"
    plain = cfg(_engine())
    assert torch.isfinite(fast).all()
    assert _rel(fast, plain) < 1e-2


def test_gguf_mode_fp8_loads_and_runs():
    engine = _engine(quant="q8", gguf_mode="fp8")
    assert not any(hasattr(p, "quant_type") for p in engine.pipe.transformer.parameters())
    ref = _latents(_engine(quant="q8"))
    assert _rel(_latents(engine), ref) < 0.1


def test_cuda_graph_replay_equals_the_plain_forward(fast_engine):
    from zturbo.speed.graphs import GraphedForward

    graphed = fast_engine.pipe.transformer.forward
    assert isinstance(graphed, GraphedForward)
    replayed = _latents(fast_engine, seed=5)
    assert graphed.graphs and not graphed.failed, graphed.failed
    graphed.failed = "off for this test"  # the plain forward
    try:
        plain = _latents(fast_engine, seed=5)
    finally:
        graphed.failed = None
    assert _rel(replayed, plain) < 1e-3  # the same kernels on the same inputs


def test_cuda_graphs_step_aside_when_the_weights_move():
    engine = _engine(fast=True)
    tr = engine.pipe.transformer
    _latents(engine)
    assert tr.forward.graphs
    first = tr.forward.sentinels[0]
    first.data = first.data.clone()  # what offloading does to each weight: new storage a replay would miss
    after = _latents(engine)
    assert torch.isfinite(after).all()
    assert "moved" in tr.forward.failed and not tr.forward.graphs



def test_a_new_shape_is_captured_at_its_third_pass_after_two_real_ones(fast_engine):
    """The passes before the capture are the real passes of the image (its warm-up), not extra forwards."""
    from zturbo import defaults

    graphed = fast_engine.pipe.transformer.forward
    graphed.graphs.clear()
    graphed.seen.clear()
    _latents(fast_engine, height=160, width=96, num_inference_steps=defaults.CUDA_GRAPH_CAPTURE_AT - 1)
    assert not graphed.graphs and sum(graphed.seen.values()) == defaults.CUDA_GRAPH_CAPTURE_AT - 1
    graphed.seen.clear()
    out = _latents(fast_engine, height=160, width=96, num_inference_steps=5)
    assert len(graphed.graphs) == 1 and not graphed.failed
    assert torch.isfinite(out).all()
