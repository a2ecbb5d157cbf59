"""The engine on the tiny model: equal to stock diffusers, reproducible, honest about what ran."""

import numpy as np
import pytest
import torch

from zturbo import Cancelled, Engine, GenerationParams
from zturbo.models import tiny


# long enough that bf16 GEMMs over 512 padded rows and over its own rows round differently on a CPU
ROBOT = ("A sleek black helmeted robot shown in a three-quarter profile against a solid red background. "
         "Subject: a highly detailed mechanical head")


def pixels(image):
    return np.asarray(image).astype(np.int16)


def _stock(params, dtype=torch.float32, **kw):
    pipe = tiny.build_pipeline(dtype) if dtype != torch.float32 else tiny.build_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        height=params.height, width=params.width, num_inference_steps=params.steps,
        guidance_scale=params.guidance, generator=torch.Generator("cpu").manual_seed(params.seed), **kw,
    ).images[0]


@pytest.fixture(scope="module")
def bf16_engine():
    return Engine.load(model="tiny", device="cpu", dtype="bfloat16")


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("guidance,negative,steps", [(0.0, "", 8), (0.75, "blurry", 3)])
def test_parity_with_a_direct_diffusers_call_from_the_prompt_string(tiny_engine, bf16_engine, small_params, dtype,
                                                                    guidance, negative, steps):
    """zturbo's Engine and a plain ZImagePipeline(prompt=...) call on the same weights, prompt and seed:
    the same pixels, in float32 and in bf16 (every real model), because plain runs encode the prompt with
    diffusers' own padded encode_prompt."""
    engine = tiny_engine if dtype == "float32" else bf16_engine
    p = small_params.replace(prompt=ROBOT, guidance=guidance, negative_prompt=negative, steps=steps)
    ours = pixels(engine.generate(p).image)
    theirs = pixels(_stock(p, getattr(torch, dtype), prompt=p.prompt, negative_prompt=negative or None))
    assert np.array_equal(ours, theirs)


def test_unpadded_encoding_is_exact_in_float32_and_within_rounding_in_bf16(small_params):
    """--fast drops the 512-token padding: right padding cannot change a causal encoder's states for real
    tokens, so float32 agrees to 1e-5; bf16 GEMMs of another shape round differently (README says how much)."""
    prompt = ROBOT
    for dtype, atol in (("float32", 1e-5), ("bfloat16", 0.1)):
        plain = Engine.load(model="tiny", device="cpu", dtype=dtype)
        fast = Engine.load(model="tiny", device="cpu", dtype=dtype)
        fast.unpadded_prompts = True
        a, b = plain.encode_prompt(prompt).embeds, fast.encode_prompt(prompt).embeds
        assert a.shape == b.shape
        torch.testing.assert_close(b.float(), a.float(), rtol=0, atol=atol)
        if dtype == "bfloat16":
            assert not torch.equal(a, b)  # the reason plain runs pad: bf16 is not exact


def test_fast_turns_on_the_unpadded_encoding():
    from zturbo import LoadOptions

    assert Engine.load(LoadOptions(model="tiny", device="cpu", fast=True)).unpadded_prompts
    assert not Engine.load(LoadOptions(model="tiny", device="cpu")).unpadded_prompts


def test_same_params_same_pixels_and_new_seed_new_pixels(tiny_engine, small_params):
    a = tiny_engine.generate(small_params).image
    b = tiny_engine.generate(small_params).image
    c = tiny_engine.generate(small_params.replace(seed=43)).image
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(c))


def test_num_images_are_each_reproducible_alone(tiny_engine, small_params):
    res = tiny_engine.generate(small_params, num_images=3)
    assert [p.seed for p in res.params] == [42, 43, 44]
    alone = tiny_engine.generate(small_params.replace(seed=44)).image
    assert np.array_equal(pixels(res.images[2]), pixels(alone))


def test_seeds_never_wrap_past_the_largest(tiny_engine, small_params):
    from zturbo import InvalidParams, seed_series

    top = 2**64 - 1
    with pytest.raises(InvalidParams, match="seeds never wrap"):
        tiny_engine.generate(small_params.replace(seed=top), num_images=2)
    res = tiny_engine.generate(small_params.replace(seed=top - 1, steps=1), num_images=2)
    assert [p.seed for p in res.params] == [top - 1, top]
    assert seed_series(5, 3) == [5, 6, 7]
    for bad in (0, -1, True, 2.0):
        with pytest.raises(InvalidParams):
            seed_series(5, bad)


@pytest.mark.parametrize("steps", [1, 8, 9])
def test_passes_are_counted(tiny_engine, small_params, steps):
    res = tiny_engine.generate(small_params.replace(steps=steps))
    assert res.passes == steps
    assert res.recipes[0]["model_evaluations"] == steps


def test_guidance_doubles_the_evaluations(tiny_engine, small_params):
    res = tiny_engine.generate(small_params.replace(guidance=0.5, steps=4))
    assert res.passes == 4 and res.recipes[0]["model_evaluations"] == 8
    assert res.recipes[0]["cfg"] is True
    assert any("doubles the cost" in w for w in res.warnings)


def test_repeated_prompt_skips_the_text_encoder(tiny_engine, small_params):
    p = small_params.replace(prompt="a prompt seen only by this test")
    first = tiny_engine.generate(p)
    calls = []
    hook = tiny_engine.pipe.text_encoder.register_forward_hook(lambda *a: calls.append(1))
    try:
        second = tiny_engine.generate(p.replace(seed=7))
    finally:
        hook.remove()
    assert calls == []
    assert second.recipes[0]["timings"]["text_encoding"] == 0.0
    assert first.recipes[0]["timings"]["text_encoding"] > 0.0


def test_long_prompt_is_truncated_with_a_warning(tiny_engine, small_params):
    prompt = " ".join(f"word{i}" for i in range(400))
    res = tiny_engine.generate(small_params.replace(prompt=prompt, steps=1))
    rec = res.recipes[0]
    assert rec["truncated"] is True and rec["prompt_tokens"] > 512
    assert any(f"last {rec['prompt_tokens'] - 512} tokens were dropped" in w for w in res.warnings)


def test_empty_prompt_is_allowed(tiny_engine, small_params):
    res = tiny_engine.generate(small_params.replace(prompt="", steps=1))
    assert any("unconditional" in w for w in res.warnings)


def test_step_callback_and_cancel(tiny_engine, small_params):
    seen = []
    tiny_engine.generate(small_params.replace(steps=3), on_step=lambda s, n, lat: seen.append((s, n, tuple(lat.shape))))
    assert seen == [(1, 3, (1, 16, 8, 8)), (2, 3, (1, 16, 8, 8)), (3, 3, (1, 16, 8, 8))]
    steps = []
    with pytest.raises(Cancelled):
        tiny_engine.generate(small_params, on_step=lambda s, n, lat: steps.append(s), should_cancel=lambda: len(steps) >= 2)
    assert steps == [1, 2]


def test_recipe_is_complete(tiny_engine, small_params):
    rec = tiny_engine.generate(small_params).recipes[0]
    assert rec["params"]["seed"] == 42 and rec["params"]["rng"] == "cpu"
    assert rec["model"]["source"] == "tiny" and "noise" in rec["model"]["label"]
    assert len(rec["model"]["weights_sha256"]) == 64
    assert set(rec["timings"]) == {"text_encoding", "denoising", "decoding"}
    assert {"torch", "diffusers", "transformers", "zturbo"} <= set(rec["versions"])
    assert rec["nan"] is False and rec["black"] is False


def test_nan_output_is_flagged():
    engine = Engine.load(model="tiny", device="cpu")
    with torch.no_grad():
        engine.pipe.transformer.all_final_layer["2-1"].linear.weight.fill_(float("nan"))
    res = engine.generate(GenerationParams(prompt="x", seed=1, width=32, height=32, steps=1))
    assert res.recipes[0]["nan"] is True
    assert any("NaN" in w for w in res.warnings)


def test_black_output_is_flagged():
    engine = Engine.load(model="tiny", device="cpu")
    with torch.no_grad():
        conv = engine.pipe.vae.decoder.conv_out
        conv.weight.zero_()
        conv.bias.fill_(-10.0)
    res = engine.generate(GenerationParams(prompt="x", seed=1, width=32, height=32, steps=1))
    assert res.recipes[0]["black"] is True
    assert any("all black" in w for w in res.warnings)


def test_to_pil_equals_diffusers_postprocess_bit_for_bit():
    """The engine converts to 8 bits on the device; the pixels are diffusers' own, in every dtype."""
    from diffusers.image_processor import VaeImageProcessor

    from zturbo.engine import to_pil

    proc = VaeImageProcessor(vae_scale_factor=16)
    for dtype in (torch.bfloat16, torch.float16, torch.float32):
        x = (torch.randn(1, 3, 48, 80, generator=torch.Generator().manual_seed(1)) * 0.9).to(dtype)
        assert np.array_equal(np.asarray(to_pil(x)), np.asarray(proc.postprocess(x, output_type="pil")[0]))
