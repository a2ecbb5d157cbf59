"""--fast's forward wrapper (speed/graphs.py) on a CPU: a batch of several images runs one image at a time,
equal to diffusers' batched forward. The CUDA graphs themselves are tested on the GPU tier."""

import numpy as np
import torch

from zturbo import Engine
from zturbo.speed.graphs import install


def _cfg_latents(engine, negative="blurry, a much longer negative prompt than the prompt"):
    g = torch.Generator("cpu").manual_seed(7)
    emb = [engine.encode_prompt("a robot").embeds]
    neg = [engine.encode_prompt(negative).embeds]
    return engine.pipe(prompt_embeds=emb, negative_prompt_embeds=neg, guidance_scale=3.0, generator=g, height=64,
                       width=64, num_inference_steps=3, output_type="latent").images


def test_a_guidance_batch_runs_one_image_at_a_time_and_equals_the_batched_forward():
    engine = Engine.load(model="tiny", device="cpu")
    batched = _cfg_latents(engine)
    graphed = install(engine.pipe.transformer)
    sizes = []
    plain = graphed.plain
    graphed.plain = lambda x, t, cap, *a, **kw: (sizes.append((len(x), tuple(t.shape), cap[0].shape[0])),
                                                 plain(x, t, cap, *a, **kw))[1]
    split = _cfg_latents(engine)
    # 3 passes, each the prompt then the negative prompt (two lengths), one image at a time
    assert [s[:2] for s in sizes] == [(1, (1,))] * 6 and sizes[0][2] != sizes[1][2]
    assert torch.allclose(split, batched, atol=1e-5, rtol=1e-4), (split - batched).abs().max()
    # the check can see a mistake: the two prompts' outputs swapped (or the negative one lost) move the result
    assert not torch.allclose(_cfg_latents(engine, negative="a robot"), batched, atol=1e-3)


def test_a_generation_with_guidance_through_the_wrapper_is_the_plain_one(small_params):
    engine = Engine.load(model="tiny", device="cpu")
    p = small_params.replace(guidance=2.5, negative_prompt="blur", steps=2)
    want = engine.generate(p).images[0]
    install(engine.pipe.transformer)
    got = engine.generate(p).images[0]
    diff = np.abs(np.asarray(got, dtype=np.int16) - np.asarray(want, dtype=np.int16))
    assert diff.max() <= 1, diff.max()
