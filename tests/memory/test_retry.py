"""Out of memory at a stage: memory freed, the same job retried once one mode lower, the user told;
otherwise a clear error naming the next option. The GPU is simulated: a Placement that believes it
is on one (its moves are real diffusers calls on the CPU) and an injected torch OOM error."""

import pytest
import torch

from zturbo import Engine, OutOfMemory
from zturbo.memory import Placement, choose, next_lower, reset, set_vae_tiling

MP = 64 * 64 / 1024**2  # small_params' size in megapixels


class SimulatedGPU(Placement):
    on_gpu = True  # plan and re-plan as on a GPU; the models stay on the CPU


@pytest.fixture(scope="module")
def module_engine():
    return Engine.load(model="tiny", device="cpu")


@pytest.fixture
def engine(module_engine, monkeypatch):
    eng = module_engine
    reset(eng.pipe)
    eng._prompt_cache.clear()  # each test encodes its prompt afresh (the text stage can fail)
    set_vae_tiling(eng.pipe.vae, False)
    plan = choose(16.0, 1.0, "auto", None, ("bf16",))  # full, text encoder streamed
    monkeypatch.setattr(eng, "memory", SimulatedGPU(eng.pipe, torch.device("cpu"), plan))
    eng.freed = 0
    real_free = type(eng).free_memory

    def counting_free():
        eng.freed += 1
        real_free(eng)

    monkeypatch.setattr(eng, "free_memory", counting_free)
    return eng


def _oom_once(monkeypatch, obj, name, times=1):
    real = getattr(obj, name)
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= times:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    monkeypatch.setattr(obj, name, flaky)
    return calls


@pytest.mark.parametrize("stage", ["decode", "denoise", "text"])
def test_oom_frees_memory_and_retries_once_one_mode_lower(engine, small_params, monkeypatch, stage):
    target = {"decode": (engine.pipe.vae, "decode"), "denoise": (engine.pipe.transformer, "forward"),
              "text": (engine.pipe.text_encoder, "forward")}[stage]
    calls = _oom_once(monkeypatch, *target)
    before = engine.memory.plan
    result = engine.generate(small_params)
    assert result.image.size == (64, 64)
    assert calls["n"] >= 2  # failed once, then ran
    assert engine.freed == 1
    after = engine.memory.plan
    assert after == next_lower(before, MP) and after.vae_tiling and after.mode != "full"
    note = [w for w in result.warnings if "out of GPU memory" in w]
    assert note and f"retried in {after.label}" in note[0] and f"--memory {after.mode}" in note[0]


def test_oom_after_the_retry_is_a_clear_error_naming_the_next_option(engine, small_params, monkeypatch):
    _oom_once(monkeypatch, engine.pipe.vae, "decode", times=99)
    with pytest.raises(OutOfMemory) as err:
        engine.generate(small_params)
    msg = str(err.value)
    lower = next_lower(choose(16.0, 1.0, "auto", None, ("bf16",)), MP)
    assert "64x64" in msg and f"it ran in {lower.label}; next try --memory {next_lower(lower).mode}" in msg
    assert engine.freed == 2  # after each failure


def test_oom_at_the_bottom_names_a_quant_or_a_smaller_image(engine, small_params, monkeypatch):
    engine.memory.plan = choose(1.0, 1.0, "auto", None, ("bf16",))  # sequential already
    _oom_once(monkeypatch, engine.pipe.vae, "decode", times=99)
    with pytest.raises(OutOfMemory, match="--quant q4"):
        engine.generate(small_params)


def test_a_large_image_switches_tiling_or_mode_before_it_runs(engine, small_params):
    engine.memory.plan = choose(24.0, 1.0, "auto", None, ("bf16",))
    engine.memory.plan = type(engine.memory.plan)(**{**engine.memory.plan.to_dict(), "vae_tiling": False})
    notes = engine.memory.prepare(4.0)
    assert notes and engine.memory.plan.mode != "full" or engine.memory.plan.vae_tiling
    assert engine.pipe.vae.use_tiling == engine.memory.plan.vae_tiling


def test_cpu_engine_has_no_retry(tiny_engine, small_params, monkeypatch):
    eng = tiny_engine
    assert not eng.memory.on_gpu and "no GPU" in eng.memory.plan.reason
    _oom_once(monkeypatch, eng.pipe.vae, "decode")
    with pytest.raises(OutOfMemory, match="out of GPU memory"):
        eng.generate(small_params)


def test_a_lower_mode_that_cannot_be_placed_leaves_the_engine_usable(engine, small_params, monkeypatch):
    import zturbo.memory.place as place

    real_apply = place.apply

    def apply(pipe, plan, device, controlnet=None):
        if plan.mode != "sequential":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory while placing")
        return real_apply(pipe, plan, device, controlnet)

    _oom_once(monkeypatch, engine.pipe.vae, "decode")
    monkeypatch.setattr(place, "apply", apply)
    with pytest.raises(OutOfMemory, match="out of GPU memory"):
        engine.generate(small_params)
    assert engine.memory.plan.mode == "sequential"  # the next job can still run
