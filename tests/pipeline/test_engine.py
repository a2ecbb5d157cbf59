"""The engine on the tiny model: equal to stock diffusers, reproducible, honest about what ran."""

import numpy as np
import pytest
import torch

from zturbo import Cancelled, Engine, GenerationParams
from zturbo.models import tiny


def pixels(image):
    return np.asarray(image).astype(np.int16)


def _stock(params, **kw):
    pipe = tiny.build_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe(
        height=params.height, width=params.width, num_inference_steps=params.steps,
        guidance_scale=params.guidance, generator=torch.Generator("cpu").manual_seed(params.seed), **kw,
    ).images[0]


@pytest.mark.parametrize("guidance,negative,steps", [(0.0, "", 8), (0.75, "blurry", 3)])
def test_parity_with_direct_diffusers_call(tiny_engine, small_params, guidance, negative, steps):
    """zturbo's Engine and a plain ZImagePipeline(...) call on the same weights, prompt and seed.

    Given the same embeddings the pixels are identical: every stage after the text encoder is stock
    diffusers. From the prompt string, the only difference is zturbo's unpadded encoding, equal to
    the padded one to float rounding (1e-8 here), which can move a rare pixel by one level.
    """
    p = small_params.replace(guidance=guidance, negative_prompt=negative, steps=steps)
    ours = pixels(tiny_engine.generate(p).image)
    embeds = dict(prompt_embeds=[tiny_engine.encode_prompt(p.prompt).embeds])
    if p.uses_cfg:
        embeds["negative_prompt_embeds"] = [tiny_engine.encode_prompt(negative).embeds]
    assert np.array_equal(ours, pixels(_stock(p, **embeds)))

    theirs = pixels(_stock(p, prompt=p.prompt, negative_prompt=negative or None))
    diff = np.abs(ours - theirs)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_unpadded_encoding_equals_padded_then_stripped(tiny_engine):
    """Right padding cannot change a causal encoder's states for real tokens."""
    prompt = "A sleek black helmeted robot, three-quarter profile, solid red background"
    ours = tiny_engine.encode_prompt(prompt).embeds
    theirs = tiny_engine.pipe._encode_prompt([prompt], device="cpu", max_sequence_length=512)[0]
    assert ours.shape == theirs.shape
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


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
