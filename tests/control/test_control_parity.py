"""ControlNet on the tiny model: the same pixels as a direct diffusers ZImageControlNetPipeline call on the same
tiny weights, the ControlNet's blocks really steering the image, and no second copy of the shared modules."""

import numpy as np
import pytest
import torch
from diffusers import ZImageControlNetInpaintPipeline, ZImageControlNetModel, ZImageControlNetPipeline
from PIL import Image

from zturbo import GenerationParams, controlnet
from zturbo.models import tiny


def pixels(image):
    return np.asarray(image).astype(np.int16)


def stock(cls, params, **inputs):
    """diffusers' own ControlNet pipeline on freshly built tiny weights and the tiny ControlNet file read the
    documented way (from_single_file with its config), called from the prompt string."""
    cn = ZImageControlNetModel.from_single_file(str(controlnet.tiny_file()), config=str(controlnet.CONFIGS / "tiny"),
                                                torch_dtype=torch.float32)
    pipe = cls(controlnet=cn, **tiny.build_components())
    pipe.set_progress_bar_config(disable=True)
    return pipe(prompt=params.prompt, negative_prompt=params.negative_prompt or None, num_inference_steps=params.steps,
                guidance_scale=params.guidance, controlnet_conditioning_scale=params.control_scale,
                height=params.height, width=params.width,
                generator=torch.Generator("cpu").manual_seed(params.seed), **inputs).images[0]


@pytest.mark.parametrize("scale,guidance", [(0.75, 0.0), (1.3, 0.5)])
def test_controlnet_equals_diffusers(control_engine, control, scale, guidance):
    p = GenerationParams(prompt="a glass house", control_image=control, control_scale=scale, steps=2, seed=7,
                         guidance=guidance, negative_prompt="blur" if guidance else "", rng="cpu")
    res = control_engine.generate(p)
    theirs = stock(ZImageControlNetPipeline, p, control_image=Image.open(control).convert("RGB"))
    assert np.array_equal(pixels(res.image), pixels(theirs))
    assert res.image.size == (64, 48) and res.passes == 2  # the control image's size; one pass per step


def test_controlnet_inpaint_equals_diffusers(control_engine, control, photo, mask):
    p = GenerationParams(prompt="a red hat", image=photo, mask=mask, control_image=control, steps=2, seed=3,
                         rng="cpu")
    res = control_engine.generate(p)
    theirs = stock(ZImageControlNetInpaintPipeline, p, control_image=Image.open(control).convert("RGB"),
                   image=Image.open(photo).convert("RGB"), mask_image=Image.open(mask).convert("L"))
    assert np.array_equal(pixels(res.image), pixels(theirs))
    assert res.recipes[0]["mode"] == "inpainting" and res.passes == 2


def test_the_control_image_and_scale_change_the_picture(control_engine, control, tmp_path):
    from inputs_support import noise_image

    base = GenerationParams(prompt="x", control_image=control, steps=2, seed=1, rng="cpu")
    a = pixels(control_engine.generate(base).image)
    assert not np.array_equal(a, pixels(control_engine.generate(base.replace(control_scale=0.0)).image))
    other = noise_image(tmp_path / "other.png", seed=9)
    assert not np.array_equal(a, pixels(control_engine.generate(base.replace(control_image=str(other))).image))


def test_canny_feeds_edges_to_the_controlnet(control_engine, control):
    from zturbo.canny import canny

    p = GenerationParams(prompt="x", control_image=control, control_type="canny", steps=2, seed=2, rng="cpu")
    theirs = stock(ZImageControlNetPipeline, p, control_image=canny(Image.open(control).convert("RGB")))
    assert np.array_equal(pixels(control_engine.generate(p).image), pixels(theirs))


def test_the_controlnet_shares_the_transformers_modules(control_engine):
    run = control_engine.control_pipeline(inpaint=False)
    t = control_engine.pipe.transformer
    assert run.controlnet is control_engine.controlnet and run.transformer is t
    for name in ("t_embedder", "all_x_embedder", "cap_embedder", "noise_refiner", "context_refiner"):
        assert getattr(control_engine.controlnet, name) is getattr(t, name)


def test_the_recipe_records_the_controlnet_and_the_control_image(control_engine, control, tmp_path):
    import hashlib

    p = GenerationParams(prompt="x", control_image=control, control_scale=0.9, control_type="canny", steps=2, seed=4,
                         rng="cpu")
    res = control_engine.generate(p)
    rec = res.recipes[0]
    assert rec["controlnet"]["sha256"] == hashlib.sha256(controlnet.tiny_file().read_bytes()).hexdigest()
    assert rec["controlnet"]["variant"] == "tiny"
    assert rec["inputs"]["control"]["sha256"] == hashlib.sha256(control.read_bytes()).hexdigest()
    assert rec["params"]["control_scale"] == 0.9 and rec["params"]["control_type"] == "canny"
    out = tmp_path / "out.png"
    res.save(out)
    assert (tmp_path / "out.control.png").read_bytes() == control.read_bytes()  # the bytes given, not the edges


def test_text_to_image_recipes_carry_no_control_fields(tiny_engine, small_params):
    rec = tiny_engine.generate(small_params.replace(steps=1)).recipes[0]
    assert "controlnet" not in rec and not any(k.startswith("control") for k in rec["params"])


def test_engine_refuses_a_controlnet_without_a_control_image_and_the_reverse(control_engine, tiny_engine, control):
    from zturbo import InvalidParams

    with pytest.raises(InvalidParams, match="no control image"):
        control_engine.generate(GenerationParams(prompt="x", seed=1, width=64, height=64, rng="cpu"))
    with pytest.raises(InvalidParams, match="needs a ControlNet"):
        tiny_engine.generate(GenerationParams(prompt="x", control_image=control, seed=1, rng="cpu"))


def test_gguf_transformer_runs_with_a_controlnet(control):
    from zturbo import Engine

    engine = Engine.load(model="tiny", device="cpu", quant="q8", controlnet="tiny")
    res = engine.generate(GenerationParams(prompt="x", control_image=control, steps=1, seed=1, rng="cpu"))
    assert res.recipes[0]["model"]["quant"] == "q8" and res.recipes[0]["controlnet"]["variant"] == "tiny"
    assert engine.controlnet.t_embedder is engine.pipe.transformer.t_embedder
