"""Image-to-image and inpainting on the tiny model: the same pixels as a direct diffusers call, the real
pass count recorded, and no second copy of the weights."""

import numpy as np
import pytest
import torch
from diffusers import ZImageImg2ImgPipeline, ZImageInpaintPipeline
from PIL import Image

from zturbo import Engine, GenerationParams
from zturbo.models import tiny


def pixels(image):
    return np.asarray(image).astype(np.int16)


def stock(cls, params, dtype=torch.float32, **inputs):
    """diffusers' own pipeline on freshly built tiny weights, called from the prompt string; returns
    (image, transformer passes it ran)."""
    pipe = cls(**tiny.build_components(dtype))
    pipe.set_progress_bar_config(disable=True)
    calls = []
    pipe.transformer.register_forward_pre_hook(lambda *a: calls.append(1))
    image = pipe(prompt=params.prompt, negative_prompt=params.negative_prompt or None, strength=params.strength,
                 num_inference_steps=params.steps, guidance_scale=params.guidance,
                 generator=torch.Generator("cpu").manual_seed(params.seed), **inputs).images[0]
    return image, len(calls)


@pytest.fixture(scope="module")
def bf16_engine():
    return Engine.load(model="tiny", device="cpu", dtype="bfloat16")


@pytest.mark.parametrize("strength,steps,guidance", [(0.6, 8, 0.0), (0.3, 8, 0.0), (1.0, 4, 0.0), (0.5, 4, 0.75)])
def test_img2img_equals_diffusers(tiny_engine, photo, strength, steps, guidance):
    p = GenerationParams(prompt="a fox in the snow", image=photo, strength=strength, steps=steps, guidance=guidance,
                         negative_prompt="blur" if guidance else "", seed=7, rng="cpu")
    res = tiny_engine.generate(p)
    theirs, passes = stock(ZImageImg2ImgPipeline, p, image=Image.open(photo).convert("RGB"))
    assert np.array_equal(pixels(res.image), pixels(theirs))
    assert res.passes == passes == p.passes  # strength 0.6 of 8 steps ran 5 passes, and says so
    assert res.recipes[0]["model_evaluations"] == passes * (2 if guidance else 1)


@pytest.mark.parametrize("strength", [1.0, 0.5])
def test_inpaint_equals_diffusers(tiny_engine, photo, mask, strength):
    p = GenerationParams(prompt="a red hat", image=photo, mask=mask, strength=strength, steps=4, seed=3, rng="cpu")
    res = tiny_engine.generate(p)
    theirs, passes = stock(ZImageInpaintPipeline, p, image=Image.open(photo).convert("RGB"),
                           mask_image=Image.open(mask).convert("L"))
    assert np.array_equal(pixels(res.image), pixels(theirs))
    assert res.passes == passes == p.passes
    assert res.recipes[0]["mode"] == "inpainting"


def test_img2img_equals_diffusers_in_bf16(bf16_engine, photo):
    p = GenerationParams(prompt="a fox", image=photo, steps=4, seed=1, rng="cpu")
    theirs, _ = stock(ZImageImg2ImgPipeline, p, torch.bfloat16, image=Image.open(photo).convert("RGB"))
    assert np.array_equal(pixels(bf16_engine.generate(p).image), pixels(theirs))


def test_the_edit_pipelines_share_the_engines_weights(bf16_engine):
    """Built from pipe.components: the very same modules, still bf16 (diffusers' from_pipe would cast them)."""
    for mode in ("image-to-image", "inpainting"):
        edit = bf16_engine.edit_pipeline(mode)
        for name in ("transformer", "vae", "text_encoder"):
            assert getattr(edit, name) is getattr(bf16_engine.pipe, name)
    assert bf16_engine.pipe.transformer.dtype == torch.bfloat16


def test_text_to_image_is_unchanged_after_an_edit(tiny_engine, photo, small_params):
    """The scheduler is shared: img2img's begin index must not leak into the next text-to-image run."""
    before = pixels(tiny_engine.generate(small_params).image)
    tiny_engine.generate(GenerationParams(prompt="x", image=photo, strength=0.3, seed=1, rng="cpu"))
    after = tiny_engine.generate(small_params)
    assert np.array_equal(before, pixels(after.image)) and after.passes == small_params.steps


def test_step_callback_counts_the_passes_that_run_and_the_recipe_records_the_input(tiny_engine, photo, mask):
    import hashlib

    seen = []
    p = GenerationParams(prompt="x", image=photo, mask=mask, strength=0.6, seed=2, rng="cpu")
    res = tiny_engine.generate(p, on_step=lambda i, total, _l: seen.append((i, total)))
    assert seen == [(i, 5) for i in range(1, 6)]
    rec = res.recipes[0]
    assert rec["inputs"]["image"]["sha256"] == hashlib.sha256(photo.read_bytes()).hexdigest()
    assert rec["inputs"]["mask"]["sha256"] == hashlib.sha256(mask.read_bytes()).hexdigest()
    assert (rec["inputs"]["image"]["width"], rec["inputs"]["image"]["height"]) == (64, 48)
    assert rec["params"]["strength"] == 0.6 and rec["passes"] == 5


def test_cancel_drops_an_edit_too(tiny_engine, photo):
    from zturbo import Cancelled

    with pytest.raises(Cancelled):
        tiny_engine.generate(GenerationParams(prompt="x", image=photo, seed=1, rng="cpu"), should_cancel=lambda: True)


def test_an_input_gone_before_the_run_is_invalid_params(tiny_engine, tmp_path):
    from inputs_support import noise_image

    from zturbo import InvalidParams

    p = GenerationParams(prompt="x", image=noise_image(tmp_path / "gone.png"), seed=1, rng="cpu")
    (tmp_path / "gone.png").unlink()
    with pytest.raises(InvalidParams, match="no such file"):
        tiny_engine.generate(p)
