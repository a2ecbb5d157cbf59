"""--fast with a ControlNet on CPU: the block rewrite --fast applies (real-valued RoPE, fused QKV and gate+up)
must reach the ControlNet's own blocks too, since they share the transformer's RoPE embedder; the pixels stay
those of the plain pipeline. (Compile, attention backends and FP8 are GPU-only: tests/control/test_control_gpu.py.)"""

import numpy as np
import pytest

from zturbo import Engine, GenerationParams
from zturbo.speed.fused import CONTROL_BLOCK_LISTS, blocks_of, rewrite_blocks, rewrite_control_blocks


@pytest.fixture
def params(control):
    return GenerationParams(prompt="a glass house", control_image=control, control_scale=1.2, steps=2, seed=7,
                            rng="cpu")


def test_rewritten_transformer_and_controlnet_keep_the_pixels(params):
    plain = Engine.load(model="tiny", device="cpu", controlnet="tiny")
    ref = np.asarray(plain.generate(params).image).astype(int)
    engine = Engine.load(model="tiny", device="cpu", controlnet="tiny")
    rewrite_blocks(engine.pipe.transformer)
    control = blocks_of(engine.controlnet, CONTROL_BLOCK_LISTS)
    assert rewrite_control_blocks(engine.controlnet) == len(control) > 0
    assert not any(hasattr(m, "to_q") or hasattr(m, "w1") for b in control for m in b.modules())
    got = np.asarray(engine.generate(params).image).astype(int)
    assert np.abs(got - ref).max() <= 2  # float32 throughout: only the GEMM summation order differs
    # the hints still steer the image after the rewrite
    off = np.asarray(engine.generate(params.replace(control_scale=0.0)).image).astype(int)
    assert np.abs(off - got).max() > 10


def test_the_controlnet_cannot_be_left_out_of_the_rewrite(params):
    """Why rewrite_control_blocks exists: after the transformer's rewrite its shared RoPE tables are real-valued,
    which diffusers' stock processor in the ControlNet's blocks cannot read."""
    engine = Engine.load(model="tiny", device="cpu", controlnet="tiny")
    rewrite_blocks(engine.pipe.transformer)
    with pytest.raises(RuntimeError):
        engine.generate(params)


def test_generate_fast_with_a_controlnet_writes_the_image_and_its_recipe(tmp_path, control, capsys):
    """On a CPU --fast turns nothing on but the prompt cache and says why; the ControlNet still runs, and the
    recipe names both."""
    from zturbo.cli import main
    from zturbo.metadata import read_recipe

    out = tmp_path / "a.png"
    assert main(["generate", "a glass house", "--controlnet", "tiny", "--control", str(control), "--fast",
                 "--model", "tiny", "--device", "cpu", "--rng", "cpu", "--steps", "2", "-o", str(out)]) == 0
    assert "no CUDA GPU" in capsys.readouterr().err
    recipe = read_recipe(out)
    assert recipe["controlnet"]["name"] == "tiny" and recipe["params"]["control_scale"] == 0.75


def test_serve_warm_up_gives_a_loaded_controlnet_a_control_image():
    """serve warms up with generations of its own; with a ControlNet loaded each one needs a control image (a
    generation without one is refused), so the warm-up makes a grey one per size."""
    from zturbo.cli.common import warm_up
    from zturbo.speed.fast import Feature

    engine = Engine.load(model="tiny", device="cpu", controlnet="tiny")
    engine.speed = [Feature("compile", True, "as if compiled: the warm-up then runs every size")]
    assert warm_up(engine, [(64, 48), (48, 64)], quiet=True) > 0


def test_the_controlnets_blocks_share_one_compile_and_keep_their_output():
    """Compiled whole, each control block compiled on its own (the hints it unbinds and re-stacks grow block by
    block); compile_control_blocks compiles their common DiT part once. Counted with Dynamo's "eager" backend
    (tracing, no code generation), so it runs on a CPU."""
    import json

    import torch
    from diffusers import ZImageControlNetModel
    from torch._dynamo.utils import counters

    from zturbo.controlnet import CONFIGS
    from zturbo.speed.fused import compile_control_blocks

    cfg = {k: v for k, v in json.loads((CONFIGS / "tiny" / "config.json").read_text()).items() if not k.startswith("_")}
    cfg["control_layers_places"] = [0, 1, 2, 3]  # four control blocks (the real 2.1 has 15)
    torch.manual_seed(0)
    cn = ZImageControlNetModel(**cfg)
    for name, p in cn.named_parameters():
        if "proj" in name:
            torch.nn.init.normal_(p, std=0.05)
    g = torch.Generator().manual_seed(0)
    c, x = torch.randn(1, 32, 256, generator=g), torch.randn(1, 32, 256, generator=g)
    freqs = torch.polar(torch.ones(1, 32, 64), torch.rand(1, 32, 64, generator=g))
    adaln = torch.randn(1, 256, generator=g)

    def run():
        out = c
        with torch.no_grad():
            for b in cn.control_layers:
                out = b(out, x, None, freqs, adaln)
        return out

    ref = run()
    torch._dynamo.reset()
    counters.clear()
    assert compile_control_blocks(cn.control_layers, backend="eager", fullgraph=True, dynamic=True) == 4
    got = run()
    assert counters["stats"]["unique_graphs"] == 1  # one compile for the four blocks
    assert got.shape == ref.shape == (5, 1, 32, 256) and torch.allclose(got, ref, atol=1e-5)


def test_guidance_with_a_controlnet_runs_one_image_at_a_time_and_keeps_the_pixels(params):
    """--fast's forward wrappers split guidance's batch of 2 for the ControlNet and the transformer alike."""
    from zturbo.speed.graphs import GraphedForward, PerImageHints, SplitControlForward, install

    p = params.replace(guidance=2.0, negative_prompt="blurry, a much longer negative prompt")
    engine = Engine.load(model="tiny", device="cpu", controlnet="tiny")
    ref = np.asarray(engine.generate(p).image).astype(int)
    graphed = install(engine.pipe.transformer, engine.controlnet)
    assert isinstance(engine.controlnet.forward, SplitControlForward) and isinstance(graphed, GraphedForward)
    seen = {"control": [], "transformer": []}
    control_plain, transformer_plain = engine.controlnet.forward.plain, graphed.plain

    def control(x, *a, **kw):
        seen["control"].append(len(x))
        return control_plain(x, *a, **kw)

    def transformer(x, *a, **kw):
        seen["transformer"].append((len(x), type(kw.get("controlnet_block_samples")).__name__))
        return transformer_plain(x, *a, **kw)

    engine.controlnet.forward.plain, graphed.plain = control, transformer
    got = np.asarray(engine.generate(p).image).astype(int)
    assert seen["control"] == [1] * 4 and seen["transformer"] == [(1, "dict")] * 4  # 2 passes x 2 images
    assert np.abs(got - ref).max() <= 2
    # paused (zturbo trace's hooks must see the batch): both run the batch of 2, as diffusers does
    seen["control"].clear(), seen["transformer"].clear()
    graphed.paused = True
    paused = np.asarray(engine.generate(p).image).astype(int)
    assert seen["control"] == [2] * 2 and seen["transformer"] == [(2, "dict")] * 2
    assert np.abs(paused - ref).max() <= 2
    # per-image hints read by a forward that does not split are the batched hints, each image's zero-padded
    import torch

    a, b = torch.ones(1, 3, 4), torch.full((1, 5, 4), 2.0)
    hints = PerImageHints([{7: a}, {7: b}])
    assert 7 in hints and 8 not in hints and list(hints) == [7]
    assert hints[7].shape == (2, 5, 4) and hints[7][0, 3:].abs().sum() == 0 and (hints[7][1] == 2).all()
    assert hints[7] is hints.batched()[7]  # padded once
