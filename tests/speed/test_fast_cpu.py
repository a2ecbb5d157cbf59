"""--fast and --gguf-mode on a CPU: what can't run says why, what can run stays exact."""

import pytest
import torch

from zturbo import Engine, InvalidParams
from zturbo.cli import main
from zturbo.speed import apply_fast
from zturbo.speed.fp8 import is_fp8_linear

TINY_CPU = dict(model="tiny", device="cpu")
KW = dict(height=64, width=64, num_inference_steps=2, guidance_scale=0.0, output_type="latent")


def _latents(engine, prompt="a robot"):
    emb = [engine.encode_prompt(prompt).embeds]
    return engine.pipe(prompt_embeds=emb, generator=torch.Generator().manual_seed(1), **KW).images


@pytest.mark.parametrize("tier", ["lossless", "fp8"])
def test_fast_on_cpu_degrades_and_says_why(small_params, tier):
    engine = Engine.load(fast=tier, **TINY_CPU)
    by_name = {f.name: f for f in engine.speed}
    assert by_name["prompt_cache"].on
    names = ("blocks", "attention", "fp8", "compile", "cuda_graphs") if tier == "fp8" else \
        ("blocks", "attention", "compile", "cuda_graphs")
    assert set(by_name) == {"prompt_cache", *names}  # the lossless tier never mentions FP8
    for name in names:
        assert not by_name[name].on and "no CUDA GPU" in by_name[name].detail
    result = engine.generate(small_params)
    assert result.passes == small_params.steps
    assert any(s.startswith("compile: off") for s in result.recipes[0]["speed"])


def test_fast_off_records_nothing(tiny_engine, small_params):
    assert tiny_engine.generate(small_params).recipes[0]["speed"] == []


def test_gguf_mode_bf16_equals_on_the_fly():
    ondemand = Engine.load(quant="q8", **TINY_CPU)
    once = Engine.load(quant="q8", gguf_mode="bf16", **TINY_CPU)
    assert [f.name for f in once.speed] == ["gguf_mode"] and once.speed[0].on
    assert not any(hasattr(p, "quant_type") for p in once.pipe.transformer.parameters())
    assert torch.equal(_latents(ondemand), _latents(once))


def test_gguf_mode_fp8_without_gpu_is_a_clear_error():
    with pytest.raises(InvalidParams, match="FP8 tensor cores.*use --gguf-mode bf16"):
        Engine.load(quant="q8", gguf_mode="fp8", **TINY_CPU)


def test_gguf_mode_auto_on_cpu_picks_bf16():
    engine = Engine.load(quant="q8", fast=True, **TINY_CPU)
    assert str(engine.speed[0]).startswith("gguf_mode: on (bf16:")


def test_fast_tiers_are_validated_and_true_means_lossless():
    from zturbo import LoadOptions

    assert LoadOptions(fast=True).fast == "lossless" and LoadOptions(fast=False).fast is None
    with pytest.raises(InvalidParams, match="fast must be one of lossless, fp8"):
        LoadOptions(fast="turbo")


def test_fp8_filter_keeps_precision_sensitive_layers(tiny_engine):
    tr = tiny_engine.pipe.transformer
    chosen = [n for n, m in tr.named_modules() if is_fp8_linear(m, n)]
    assert chosen and all(".attention." in n or ".feed_forward." in n for n in chosen)
    assert any(n.startswith("layers.") for n in chosen) and any(n.startswith("noise_refiner.") for n in chosen)
    for n, m in tr.named_modules():
        if isinstance(m, torch.nn.Linear) and any(k in n for k in ("embedder", "adaLN", "final_layer")):
            assert not is_fp8_linear(m, n), n


def test_cli_fast_says_what_it_turned_on(tmp_path, capsys):
    out = tmp_path / "f.png"
    assert main(["generate", "a robot", "--size", "64x64", "--steps", "2", "--seed", "1", "--model", "tiny",
                 "--device", "cpu", "--fast", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "fast: blocks, attention, compile, cuda_graphs: off (no CUDA GPU" in err
    assert err.count("no CUDA GPU") == 1 and out.exists()  # one reason, said once
    assert main(["generate", "a robot", "--size", "64x64", "--steps", "2", "--seed", "1", "--model", "tiny",
                 "--device", "cpu", "--fp8", "-o", str(tmp_path / "g.png")]) == 0
    assert "fast: blocks, attention, fp8, compile, cuda_graphs: off (no CUDA GPU" in capsys.readouterr().err


def test_apply_fast_disabled_touches_nothing(tiny_engine):
    assert apply_fast(tiny_engine.pipe, None) == []


def test_gguf_mode_on_a_bf16_model_says_there_is_nothing_to_do():
    engine = Engine.load(gguf_mode="bf16", **TINY_CPU)
    assert str(engine.speed[0]) == "gguf_mode: off (bf16: not a GGUF transformer)"


def test_fast_on_an_offloaded_transformer_says_why_it_is_off(tiny_engine):
    """Engine.load passes the memory mode when the transformer is not resident (group/model offload)."""
    features = {f.name: f for f in apply_fast(tiny_engine.pipe, "fp8", offload="group-offload")}
    for name in ("blocks", "attention", "fp8", "compile", "cuda_graphs"):
        assert not features[name].on and "--memory group-offload" in features[name].detail
    assert "--memory full" in features["compile"].detail
