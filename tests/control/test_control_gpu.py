"""ControlNet and per-request LoRAs on a real GPU (device machine only: pytest -m gpu tests/control tests/lora).
No timings here. The tiny model keeps a --memory mode it is given, so each mode here is really exercised
(engine.memory.plan.mode says so). All passed on an H200 except the last, written after the device time was spent:
test_controlnet_with_guidance_under_fast_reuses_the_compile_and_stays_with_plain."""

import numpy as np
import pytest
import torch
from inputs_support import half_mask, noise_image

from zturbo import Engine, GenerationParams

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("control")
    return noise_image(d / "edges.png", 128, 96), noise_image(d / "photo.png", 128, 96, seed=2), half_mask(d / "m.png", 128, 96)


@pytest.mark.parametrize("memory", ["full", "sequential"])
def test_controlnet_runs_on_the_gpu_with_and_without_a_mask(memory, files):
    edges, photo, mask = files
    engine = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, memory=memory, controlnet="tiny")
    for extra in ({}, {"image": photo, "mask": mask}):
        p = GenerationParams(prompt="a fox", control_image=edges, seed=1, rng="cuda", **extra)
        res = engine.generate(p)
        rec = res.recipes[0]
        assert res.passes == 8 and res.image.size == (128, 96) and not rec["nan"]
        assert rec["controlnet"]["variant"] == "tiny" and rec["params"]["control_scale"] == 0.75
    off = engine.generate(GenerationParams(prompt="a fox", control_image=edges, control_scale=0.0, seed=1, rng="cuda"))
    on = engine.generate(GenerationParams(prompt="a fox", control_image=edges, control_scale=1.5, seed=1, rng="cuda"))
    assert not np.array_equal(np.asarray(off.image), np.asarray(on.image))  # the hints reach the DiT on the GPU


def _control_images(engine, files):
    """(no mask, with a mask, control_scale 0, control_scale 1.5) as uint8 arrays, 128x96, seed 1, cuda noise."""
    edges, photo, mask = files
    out = []
    for extra in ({}, {"image": photo, "mask": mask}, {"control_scale": 0.0}, {"control_scale": 1.5}):
        res = engine.generate(GenerationParams(prompt="a fox", control_image=edges, seed=1, rng="cuda", **extra))
        assert res.passes == 8 and not res.recipes[0]["nan"]
        out.append(np.asarray(res.image).astype(np.int16))
    return out


@pytest.fixture(scope="module")
def full_images(files):
    return _control_images(Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, memory="full",
                                       controlnet="tiny"), files)


@pytest.mark.parametrize("memory", ["model-offload", "group-offload"])
def test_controlnet_under_offload_matches_the_resident_image(memory, files, full_images):
    """The ControlNet calls the transformer's embedders, refiners and pad tokens before the transformer runs: under
    model offload the transformer is moved in first, under group offload the ControlNet streams its own blocks and
    holds GPU copies of the transformer's unmatched modules. Same pixels as memory=full, within bf16 rounding."""
    engine = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, memory=memory, controlnet="tiny")
    assert engine.memory.plan.mode == memory  # the tiny model keeps a mode the user names
    got = _control_images(engine, files)
    for name, a, b in zip(("no mask", "mask", "scale 0", "scale 1.5"), got, full_images):
        diff = np.abs(a - b)
        assert diff.max() <= 2 and diff.mean() < 0.5, (name, int(diff.max()), float(diff.mean()))
    assert not np.array_equal(got[2], got[3])  # control_scale reaches the DiT
    if memory == "model-offload":  # between calls the ControlNet waits on the CPU with the transformer
        assert {p.device.type for p in engine.controlnet.control_layers.parameters()} == {"cpu"}


def test_per_request_loras_switch_on_the_gpu_and_leave_the_base_pixels(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent.parent / "lora"))
    from lora_files import write_lora  # tests/lora's LoRA writer

    style = tmp_path / "style.safetensors"
    write_lora(style, "diffusers", seed=4, alpha=400.0)
    engine = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16)
    p = GenerationParams(prompt="a red fox", seed=3, width=64, height=64, rng="cuda")
    base = np.asarray(engine.generate(p).image)
    styled = engine.generate(p, loras=[(str(style), 1.0)])
    assert not np.array_equal(np.asarray(styled.image), base) and styled.recipes[0]["loras"][0]["fused"] is False
    assert np.array_equal(np.asarray(engine.generate(p).image), base)


def _mean_abs(a, b) -> float:
    return float(np.abs(np.asarray(a.image).astype(float) - np.asarray(b.image).astype(float)).mean())


@pytest.mark.parametrize("tier", ["lossless", "fp8"])
def test_controlnet_with_fast_stays_with_the_plain_image(tier, files):
    """--fast rewrites and compiles the ControlNet's blocks too (they share the transformer's RoPE tables); the
    image moves from plain's by far less than the control itself moves it."""
    edges, photo, mask = files
    plain = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, controlnet="tiny")
    fast = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, controlnet="tiny", fast=tier)
    on = {f.name: f for f in fast.speed}
    assert on["blocks"].on and "ControlNet" in on["blocks"].detail and on["compile"].on
    if tier == "fp8" and torch.cuda.get_device_capability() >= (8, 9):
        assert on["fp8"].on and "ControlNet's blocks bf16" in on["fp8"].detail
    for extra in ({}, {"image": photo, "mask": mask}):
        p = GenerationParams(prompt="a fox", control_image=edges, control_scale=1.5, seed=1, rng="cuda", **extra)
        a, b = plain.generate(p), fast.generate(p)
        assert not b.recipes[0]["nan"]
        effect = _mean_abs(plain.generate(p.replace(control_scale=0.0)), a)
        assert effect > 1.0  # the control moves the image...
        assert _mean_abs(a, b) < (0.25 if tier == "lossless" else 0.5) * effect  # ...far more than --fast does


def test_controlnet_with_guidance_under_fast_reuses_the_compile_and_stays_with_plain(files):
    """Guidance > 0 runs the ControlNet and the transformer one image at a time (speed/graphs.py): no new compile
    after a guidance 0 image, and the image stays with plain's as in the test above."""
    from torch._dynamo.utils import counters

    edges = files[0]
    plain = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, controlnet="tiny")
    fast = Engine.load(model="tiny", device="cuda", dtype=torch.bfloat16, controlnet="tiny", fast="lossless")
    p = GenerationParams(prompt="a fox", control_image=edges, control_scale=1.5, seed=1, rng="cuda")
    fast.generate(p)  # compiles the blocks (transformer and ControlNet) for one image
    before = counters["stats"]["unique_graphs"]
    cfg = p.replace(guidance=2.0, negative_prompt="blurry, a much longer negative prompt than the prompt")
    b = fast.generate(cfg)
    assert counters["stats"]["unique_graphs"] == before, "guidance > 0 compiled the blocks again"
    a = plain.generate(cfg)
    assert not b.recipes[0]["nan"]
    effect = _mean_abs(plain.generate(cfg.replace(control_scale=0.0)), a)
    assert effect > 1.0 and _mean_abs(a, b) < 0.25 * effect
