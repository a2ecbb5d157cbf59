"""A ControlNet under the offload modes, on the CPU: the placement pieces of memory/controlnet.py called with the
CPU as the "GPU" (diffusers' group offload runs there without streams; the GPU test, tests/control/
test_control_gpu.py, runs the real thing), and the planner counting the ControlNet."""

import dataclasses

import numpy as np
import pytest
import torch
from inputs_support import half_mask, noise_image

from zturbo import Engine, GenerationParams, defaults
from zturbo.memory import Placement, choose, estimate_peak_gb, next_lower, reset
from zturbo.memory import controlnet as control
from zturbo.memory import place

CPU = torch.device("cpu")


class SimulatedGPU(Placement):
    on_gpu = True  # act on the plan's mode as on a GPU; the "GPU" is the CPU


def _has_group_hook(module) -> bool:
    registry = getattr(module, "_diffusers_hook", None)
    return registry is not None and registry.get_hook("group_offloading") is not None


@pytest.fixture(scope="module")
def engine():
    return Engine.load(model="tiny", device="cpu", controlnet="tiny")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cn")
    return noise_image(d / "edges.png", 64, 48, seed=5), noise_image(d / "photo.png", 64, 48, seed=2), \
        half_mask(d / "m.png", 64, 48)


def _images(engine, files):
    edges, photo, mask = files
    out = []
    for extra in ({}, {"image": photo, "mask": mask}):
        p = GenerationParams(prompt="a fox", control_image=edges, seed=1, width=64, height=48, **extra)
        out.append(np.asarray(engine.generate(p).image))
    return out


def test_group_offload_streams_the_controlnets_own_blocks_and_gives_it_resident_copies(engine, files, monkeypatch):
    want = _images(engine, files)
    pipe, cn = engine.pipe, engine.controlnet
    plan = dataclasses.replace(choose(16.0), mode="group-offload", text_encoder="stream")
    monkeypatch.setattr(engine, "memory", SimulatedGPU(pipe, CPU, plan, controlnet=cn))
    place._group_offload(pipe.transformer, CPU)
    control.place(cn, pipe.transformer, "group-offload", CPU, place._group_offload)
    try:
        # its own blocks carry hooks; the transformer's refiners keep their one hook (none added by the ControlNet)
        assert all(_has_group_hook(b) for b in cn.control_layers) and all(_has_group_hook(b) for b in cn.control_noise_refiner)
        assert _has_group_hook(cn) and cn.noise_refiner is None  # placed unlinked
        groups = {id(h.group) for b in pipe.transformer.noise_refiner
                  for h in [b._diffusers_hook.get_hook("group_offloading")]}
        assert len(groups) == len(pipe.transformer.noise_refiner)
        assert all(np.array_equal(a, b) for a, b in zip(_images(engine, files), want))  # with and without a mask
        # after a control call: the shared blocks are the transformer's, the unmatched modules its own copies
        engine.control_pipeline(inpaint=False)
        assert cn.noise_refiner is pipe.transformer.noise_refiner and cn.cap_embedder is pipe.transformer.cap_embedder
        for name in control.UNMATCHED:
            mine, theirs = getattr(cn, name), getattr(pipe.transformer, name)
            assert mine is not theirs
            theirs_params = [theirs] if isinstance(theirs, torch.Tensor) else list(theirs.parameters())
            mine_params = [mine] if isinstance(mine, torch.Tensor) else list(mine.parameters())
            assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in zip(mine_params, theirs_params))
        # reset (the out-of-memory step-down) takes the ControlNet's hooks off too
        reset(pipe, cn)
        assert not any(_has_group_hook(m) for m in [*cn.modules(), *pipe.transformer.modules()])
        assert cn.noise_refiner is None and cn.t_embedder is None
        assert all(np.array_equal(a, b) for a, b in zip(_images(engine, files), want))
    finally:
        reset(pipe, cn)


def test_model_offload_onloads_the_transformer_before_each_controlnet_pass(engine, files, monkeypatch):
    """accelerate's CpuOffload on the transformer runs only in the transformer's forward; the ControlNet runs first at
    each step, so its pre-hook must run the transformer's hook first (here a spy standing in for it)."""
    pipe, cn = engine.pipe, engine.controlnet
    events = []

    class TransformerHook:  # the pre_forward of accelerate's CpuOffload
        def pre_forward(self, module, *args, **kwargs):
            assert module is pipe.transformer
            events.append("transformer to the GPU")
            return args, kwargs

    plan = dataclasses.replace(choose(16.0), mode="model-offload", text_encoder="offload")
    monkeypatch.setattr(engine, "memory", SimulatedGPU(pipe, CPU, plan, controlnet=cn))
    control.place(cn, pipe.transformer, "model-offload", CPU, place._group_offload)
    monkeypatch.setattr(pipe.transformer, "_hf_hook", TransformerHook(), raising=False)
    spy = cn.register_forward_pre_hook(lambda m, a: events.append("controlnet"))
    moved = []
    monkeypatch.setattr(control, "release", lambda c: moved.append(c))
    try:
        edges = files[0]
        result = engine.generate(GenerationParams(prompt="a fox", control_image=edges, seed=1, width=64, height=48))
        assert events == ["transformer to the GPU", "controlnet"] * result.passes
        assert moved == [cn]  # and the ControlNet leaves the GPU after the denoising loop ...
        shared = [getattr(cn, name) for name in control.SHARED]
        assert control.own_modules(cn) and not any(m is s for m in control.own_modules(cn) for s in shared)
        # ... its own blocks only: the linked ones are the transformer's, which accelerate moves itself
    finally:
        spy.remove()
        monkeypatch.undo()
        reset(pipe, cn)
    assert not cn._forward_pre_hooks  # reset removed the onload hook


def test_sequential_offload_gives_the_controlnet_the_pad_tokens_it_cannot_reach(engine, files, monkeypatch):
    """accelerate's sequential offload keeps the transformer's own parameters (the pad tokens) on the meta device
    until its forward: the ControlNet, run first, gets copies taken at placement."""
    import accelerate

    want = _images(engine, files)
    pipe, cn = engine.pipe, engine.controlnet
    plan = dataclasses.replace(choose(16.0), mode="sequential", text_encoder="sequential")
    monkeypatch.setattr(engine, "memory", SimulatedGPU(pipe, CPU, plan, controlnet=cn))
    control.place(cn, pipe.transformer, "sequential", CPU, place._group_offload)
    accelerate.cpu_offload(pipe.transformer, CPU)  # what enable_sequential_cpu_offload does to it
    try:
        assert pipe.transformer.x_pad_token.device.type == "meta"
        assert all(np.array_equal(a, b) for a, b in zip(_images(engine, files), want))
        assert cn.x_pad_token.device.type == "cpu" and cn.x_pad_token is not pipe.transformer.x_pad_token
    finally:
        reset(pipe, cn)
    assert pipe.transformer.x_pad_token.device.type == "cpu"


# -- the planner -------------------------------------------------------------------------------------------------


def test_the_plan_counts_a_controlnet_where_it_stays_resident():
    cn = 6.7
    for mode, te in (("full", "stream"), ("model-offload", "offload"), ("sequential", "sequential")):
        without = estimate_peak_gb(mode, "bf16", te, True, 1.0)
        with_cn = estimate_peak_gb(mode, "bf16", te, True, 1.0, cn)
        assert with_cn >= without + cn, mode
    streamed = estimate_peak_gb("group-offload", "bf16", "stream", True, 1.0, cn)
    assert streamed < estimate_peak_gb("group-offload", "bf16", "stream", True, 1.0) + 2 < 5


def test_auto_does_not_pick_a_mode_that_cannot_hold_the_controlnet():
    # 20 GB: bf16 resident fits alone, not with a 6.7 GB ControlNet beside it; on 4 GB nothing fits, and group
    # offload (ControlNet streamed) comes closer than sequential (where it stays resident)
    assert choose(20.0, 1.0, "auto", None, ("bf16",)).mode == "full"
    plan = choose(20.0, 1.0, "auto", None, ("bf16",), controlnet_gb=6.7)
    assert plan.mode == "group-offload" and plan.fits and "6.7 GB ControlNet" in plan.reason
    assert plan.peak_gb + defaults.MEMORY_HEADROOM_GB <= 20.0 and plan.controlnet_gb == 6.7
    low = choose(4.0, 1.0, "auto", None, ("bf16",), controlnet_gb=6.7)
    assert low.mode == "group-offload" and not low.fits  # the smaller of the two, though short
    # stepping down after running out of memory keeps counting it: sequential is no step down from group offload
    assert next_lower(plan) is None or next_lower(plan).mode != "sequential"
    assert next_lower(choose(40.0, 1.0, "full", "bf16", ("bf16",), controlnet_gb=6.7)).controlnet_gb == 6.7


def test_load_counts_the_controlnet_file(tmp_path, monkeypatch):
    """Step 2 of load(): the planner gets the ControlNet file's size on disk (bf16)."""
    import zturbo.loading as loading
    import zturbo.memory as memory

    seen = {}

    def spy(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(memory, "choose", spy)
    monkeypatch.setattr(memory, "free_gb", lambda device, budget: 24.0)
    f = tmp_path / "cn.safetensors"
    f.write_bytes(b"\0" * 3_000_000)
    options = loading.LoadOptions(model="some/model", device="cpu", controlnet=str(f))
    with pytest.raises(RuntimeError, match="stop here"):
        loading.load(options)
    assert seen["controlnet_gb"] == pytest.approx(0.003)
