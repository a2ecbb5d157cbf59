"""A LoRA applied by zturbo equals the weights merged by hand, in every layout diffusers converts for
Z-Image; several LoRAs commute; a GGUF transformer keeps them unfused; bad files are clear errors."""

import pytest
import torch
from safetensors.torch import save_file

import zturbo
from zturbo.errors import InvalidParams
from zturbo.loading import LoadOptions

from lora_files import RANK, TARGETS, write_fused_qkv_kohya, write_lokr, write_lora

FORMATS = ["diffusers", "kohya", "ai-toolkit", "diffsynth"]


def load(*loras, **kw):
    return zturbo.load(model="tiny", device="cpu", loras=loras, **kw)


def weight(engine, module):
    return engine.pipe.transformer.get_submodule(module).weight.detach()


def assert_merged(engine, base, deltas, scale):
    changed = set()
    for module, delta in deltas.items():
        w = weight(engine, module)
        assert torch.allclose(w, base[f"{module}.weight"] + scale * delta, atol=1e-6), module
        assert not torch.equal(w, base[f"{module}.weight"])
        changed.add(f"{module}.weight")
    for name, w in engine.pipe.transformer.state_dict().items():  # nothing else moved, no adapter left behind
        assert name in base, name
        if name not in changed:
            assert torch.equal(w, base[name]), name


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_layout_equals_the_hand_merge(tmp_path, base_weights, fmt):
    path = tmp_path / f"{fmt}.safetensors"
    deltas = write_lora(path, fmt, seed=1)
    engine = load((str(path), 0.7))
    assert_merged(engine, base_weights, deltas, 0.7)
    assert isinstance(engine.pipe.transformer.get_submodule(TARGETS[0][0]), torch.nn.Linear)  # fused: plain Linear
    (rec,) = engine.loras
    assert rec["name"] == path.name and rec["scale"] == 0.7 and rec["fused"] and len(rec["sha256"]) == 64


def test_kohya_fused_qkv_is_split_onto_q_k_v(tmp_path, base_weights):
    path = tmp_path / "qkv.safetensors"
    deltas = write_fused_qkv_kohya(path, seed=2)
    assert_merged(load(str(path)), base_weights, deltas, 1.0)  # a bare path: scale 1.0


def test_ai_toolkit_lokr_equals_the_kronecker_merge(tmp_path, base_weights):
    path = tmp_path / "lokr.safetensors"
    deltas = write_lokr(path, seed=7)
    assert_merged(load((str(path), 0.5)), base_weights, deltas, 0.5)


def test_two_loras_in_either_order_give_the_same_weights(tmp_path, base_weights):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    da, db = write_lora(a, "diffusers", seed=3), write_lora(b, "kohya", seed=4)
    ab = load((str(a), 0.5), (str(b), 1.5))
    ba = load((str(b), 1.5), (str(a), 0.5))
    for module in da:
        expected = base_weights[f"{module}.weight"] + 0.5 * da[module] + 1.5 * db[module]
        assert torch.allclose(weight(ab, module), expected, atol=1e-6)
        assert torch.allclose(weight(ab, module), weight(ba, module), atol=1e-6)


def test_a_gguf_transformer_takes_the_lora_unfused(tmp_path, small_params):
    path = tmp_path / "style.safetensors"
    write_lora(path, "diffusers", seed=5, alpha=400.0)  # strong enough to move a Q8 model's pixels
    plain = zturbo.load(model="tiny", device="cpu", quant="q8")
    engine = load((str(path), 1.0), quant="q8")
    layer = engine.pipe.transformer.get_submodule(TARGETS[0][0])
    assert hasattr(layer, "base_layer") and not layer.merged  # peft's wrapper around diffusers' GGUFLinear
    assert engine.loras[0]["fused"] is False
    import numpy as np

    with_lora, without = engine.generate(small_params), plain.generate(small_params)
    assert not np.array_equal(np.asarray(with_lora.image), np.asarray(without.image))
    assert with_lora.recipes[0]["loras"][0]["name"] == "style.safetensors"


def test_gguf_with_fast_is_refused_with_a_reason(tmp_path):
    path = tmp_path / "style.safetensors"
    write_lora(path, "diffusers")
    with pytest.raises(InvalidParams, match="stays unfused .* drop --fast"):
        LoadOptions(model="tiny", quant="q8", fast="lossless", loras=((str(path), 1.0),))


def test_options_are_validated_and_frozen(tmp_path):
    path = tmp_path / "a.safetensors"
    write_lora(path, "diffusers")
    opts = LoadOptions(model="tiny", loras=[(path, "0.5")])  # a Path and a numeric string are fine
    assert opts.loras == ((str(path), 0.5),)
    with pytest.raises(Exception):
        opts.loras = ()
    bad = {
        "missing.safetensors": "no such file",
        str(tmp_path / "x.pt"): "pickled .pt files are refused",
        str(tmp_path / "x.ckpt"): "pickled .ckpt files are refused",
        str(tmp_path / "x.gguf"): "not a .safetensors file",
    }
    for p, msg in bad.items():
        with pytest.raises(InvalidParams, match=msg) as exc:
            LoadOptions(model="tiny", loras=((p, 1.0),))
        assert p in str(exc.value)
    for scale in ("abc", float("nan"), float("inf"), True, None):
        with pytest.raises(InvalidParams, match=str(path).replace("\\", "\\\\")):
            LoadOptions(model="tiny", loras=((str(path), scale),))
    with pytest.raises(InvalidParams, match="given twice"):
        LoadOptions(model="tiny", loras=((str(path), 1.0), (str(path), 0.5)))


def _bad_file(path, keys):
    save_file({k: torch.zeros(RANK, 8) if "lora_A" in k or "down" in k else torch.zeros(8, RANK) for k in keys}, str(path))


@pytest.mark.parametrize("keys,msg", [
    # Flux's diffusers LoRA: modules Z-Image does not have
    (["transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight",
      "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight"], "none of its 2 keys match"),
    # an SDXL kohya LoRA
    (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight",
      "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight"], "kohya"),
    # peft keys with no prefix: diffusers would load nothing, silently
    (["layers.0.attention.to_q.lora_A.weight", "layers.0.attention.to_q.lora_B.weight"], "without a known prefix"),
])
def test_a_lora_for_another_model_names_the_file_keys_and_format(tmp_path, keys, msg):
    path = tmp_path / "other.safetensors"
    _bad_file(path, keys)
    with pytest.raises(InvalidParams, match=msg) as exc:
        load(str(path))
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_a_z_image_lora_of_another_size_is_refused(tmp_path):
    # the real model's width (3840) on the tiny one (256): right names, wrong shapes
    path = tmp_path / "full-size.safetensors"
    save_file({"transformer.layers.0.attention.to_q.lora_A.weight": torch.zeros(RANK, 3840),
               "transformer.layers.0.attention.to_q.lora_B.weight": torch.zeros(3840, RANK)}, str(path))
    with pytest.raises(InvalidParams, match=r"none of its 2 keys match .*in 3840, model 256"):
        load(str(path))


def test_a_partly_matching_lora_is_an_error_not_a_partial_load(tmp_path):
    path = tmp_path / "partial.safetensors"
    write_lora(path, "diffusers")
    from safetensors.torch import load_file

    sd = load_file(str(path))
    sd["transformer.layers.7.attention.to_q.lora_A.weight"] = torch.zeros(RANK, 256)  # the tiny model has 2 layers
    sd["transformer.layers.7.attention.to_q.lora_B.weight"] = torch.zeros(256, RANK)
    save_file(sd, str(path))
    with pytest.raises(InvalidParams, match=r"2 of its 6 keys match no layer of.*layers\.7"):
        load(str(path))


def test_a_damaged_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not safetensors at all")
    with pytest.raises(InvalidParams, match="not a readable .safetensors file"):
        load(str(path))


def test_fast_sees_the_merged_weights(tmp_path, base_weights, monkeypatch):
    """--fast rewrites, compiles and quantises plain Linear weights: the LoRA must be in them by then."""
    path = tmp_path / "style.safetensors"
    deltas = write_lora(path, "diffusers", seed=6)
    import zturbo.speed

    seen = {}

    def spy(pipe, *args, **kwargs):
        tr = pipe.transformer
        seen["adapters"] = any(hasattr(m, "base_layer") for m in tr.modules())
        seen["weight"] = tr.get_submodule(TARGETS[0][0]).weight.detach().clone()
        return []

    monkeypatch.setattr(zturbo.speed, "apply_fast", spy)  # what load()'s speed step calls
    load((str(path), 0.3), fast="lossless")
    assert seen["adapters"] is False
    assert torch.allclose(seen["weight"], base_weights[f"{TARGETS[0][0]}.weight"] + 0.3 * deltas[TARGETS[0][0]],
                          atol=1e-6)
