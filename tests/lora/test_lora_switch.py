"""Per-call LoRAs (Engine.generate(loras=...), what serve --lora-dir uses): adapters switched on unfused weights.
A load-time LoRA left unfused (GGUF) stays on for every call; loaded adapters are capped, oldest dropped."""

import numpy as np
import pytest

import zturbo
from zturbo import GenerationParams

from lora_files import write_lora

P = GenerationParams(prompt="a red fox", seed=3, width=32, height=32, steps=2, rng="cpu")


def pixels(result):
    return np.asarray(result.image)


def test_a_load_time_unfused_lora_stays_on_around_per_call_loras(tmp_path):
    fixed, extra = tmp_path / "fixed.safetensors", tmp_path / "extra.safetensors"
    write_lora(fixed, "diffusers", seed=5, alpha=400.0)
    write_lora(extra, "kohya", seed=6, alpha=400.0)
    engine = zturbo.load(model="tiny", device="cpu", quant="q8", loras=((str(fixed), 1.0),))
    before = pixels(engine.generate(P))
    both = engine.generate(P, loras=[(str(extra), 0.5)])
    after = engine.generate(P)
    assert not np.array_equal(pixels(both), before)
    assert np.array_equal(pixels(after), before)  # the load-time LoRA is still on, the per-call one is off
    assert [(r["name"], r["scale"], r["fused"]) for r in both.recipes[0]["loras"]] == [
        ("fixed.safetensors", 1.0, False), ("extra.safetensors", 0.5, False)]
    assert [r["name"] for r in after.recipes[0]["loras"]] == ["fixed.safetensors"]


def test_loaded_adapters_are_capped_least_recently_used_first(tmp_path, monkeypatch):
    from zturbo import defaults

    engine = zturbo.load(model="tiny", device="cpu")
    monkeypatch.setattr(defaults, "SERVER_LORA_ADAPTERS_KEPT", 2)
    files = []
    for i in range(3):
        files.append(str(tmp_path / f"l{i}.safetensors"))
        write_lora(files[-1], "diffusers", seed=10 + i, alpha=80.0)
    first = pixels(engine.generate(P, loras=[(files[0], 1.0)]))
    engine.generate(P, loras=[(files[1], 1.0)])
    engine.generate(P, loras=[(files[2], 1.0)])
    assert len(engine.pipe.transformer.peft_config) == 2  # l0 was dropped
    assert np.array_equal(pixels(engine.generate(P, loras=[(files[0], 1.0)])), first)  # loaded again, same image


def test_a_bad_per_call_lora_is_refused_before_anything_changes(tmp_path):
    engine = zturbo.load(model="tiny", device="cpu")
    with pytest.raises(zturbo.InvalidParams, match="pickled .pt files are refused"):
        engine.generate(P, loras=[(str(tmp_path / "x.pt"), 1.0)])


def test_loras_kept_unfused_reproduce_a_per_call_image_bit_for_bit(tmp_path):
    """A merge rounds the weights: in bf16 the fused LoRA moves pixels the per-call adapter did not. Loading the
    LoRA unfused (LoadOptions(fuse_loras=False), what generate --from does for such an image) gives them back."""
    style = tmp_path / "style.safetensors"
    write_lora(style, "diffusers", seed=5, alpha=400.0)
    p = P.replace(width=64, height=64, steps=4)
    per_call = pixels(zturbo.load(model="tiny", device="cpu", dtype="bfloat16").generate(p, loras=[(str(style), 0.8)]))
    kw = dict(model="tiny", device="cpu", dtype="bfloat16", loras=((str(style), 0.8),))
    fused = pixels(zturbo.load(**kw).generate(p))
    unfused = zturbo.load(**kw, fuse_loras=False)
    assert not np.array_equal(fused, per_call)  # the difference this option exists for
    got = unfused.generate(p)
    assert np.array_equal(pixels(got), per_call)
    assert [r["fused"] for r in got.recipes[0]["loras"]] == [False]


def test_unfused_loras_with_fast_are_refused_in_one_line(tmp_path):
    style = tmp_path / "style.safetensors"
    write_lora(style, "diffusers", seed=5, alpha=400.0)
    with pytest.raises(zturbo.InvalidParams, match="--unfused-loras cannot run with --fast"):
        zturbo.LoadOptions(model="tiny", loras=((str(style), 1.0),), fuse_loras=False, fast=True)
