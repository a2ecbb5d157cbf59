"""zturbo inspect on tiny GGUF / safetensors files: types, bits per weight, error vs the reference."""

import json

import gguf
import numpy as np
import pytest
from safetensors.torch import save_file

from zturbo.cli import main
from zturbo.models import gguf as gguf_files
from zturbo.models import kquants, tiny
from zturbo.weights_inspect import inspect_file, layer_type

# type -> (bits per weight of the type, bound on the weighted mean relative error)
EXPECT = {"Q8_0": (8.5, 0.01), "Q4_0": (4.5, 0.12), "BF16": (16.0, 0.005)}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("weights")
    sd = tiny.build_components()["transformer"].state_dict()
    ref = d / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(ref))  # diffusers names: to_q/to_k/to_v apart
    out = {"ref": ref, "n_file_tensors": len(gguf_files.to_file_layout(sd))}
    for q in EXPECT:
        out[q] = gguf_files.write_gguf(sd, d / f"tiny-{q}.gguf", q)
    return out


@pytest.mark.parametrize("qtype", list(EXPECT))
def test_gguf_summary_and_error_bounds(files, qtype):
    bpw, bound = EXPECT[qtype]
    r = inspect_file(files[qtype], against=files["ref"])
    assert r["format"] == "gguf" and r["architecture"] == "lumina2"
    assert r["tensors"] == files["n_file_tensors"]
    assert set(r["types"]) == {qtype, "F32"} and r["types"][qtype]["bits_per_weight"] == bpw
    assert r["bulk_type"] == qtype
    cmp = r["against"]
    # every tensor found in the diffusers-named reference, the fused qkv included
    assert cmp["compared"] == r["tensors"] and not cmp["missing_in_reference"]
    assert 0 < cmp["mean_rel_error"] < bound
    qkv = cmp["by_layer_type"]["layers.*.attention.qkv.weight"]
    assert qkv["types"] == {qtype: 2} and 0 < qkv["max_rel_error"] < 2 * bound
    assert cmp["by_layer_type"]["layers.*.attention_norm1.weight"]["max_rel_error"] == 0  # F32: exact


def test_fewer_bits_more_error(files):
    err = {q: inspect_file(files[q], against=files["ref"])["against"]["mean_rel_error"] for q in EXPECT}
    assert err["BF16"] < err["Q8_0"] < err["Q4_0"]


def test_layers_kept_at_higher_precision_are_named(tmp_path):
    """A K-quant style mix: the bulk Q4_K, attention kept at Q6_K, norms F32."""
    rng = np.random.default_rng(0)
    path = tmp_path / "mix.gguf"
    w = gguf.GGUFWriter(str(path), "lumina2")
    for i in range(2):
        for name, qtype, shape in ((f"layers.{i}.feed_forward.w1.weight", "Q4_K", (64, 512)),
                                   (f"layers.{i}.attention.qkv.weight", "Q6_K", (48, 256))):
            raw = kquants.quantize(rng.standard_normal(shape).astype(np.float32), qtype)
            w.add_tensor(name, raw, raw_shape=raw.shape, raw_dtype=gguf.GGMLQuantizationType[qtype])
        w.add_tensor(f"layers.{i}.ffn_norm1.weight", np.ones(512, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = inspect_file(path)
    assert r["bulk_type"] == "Q4_K" and r["types"]["Q4_K"]["bits_per_weight"] == 4.5
    assert r["types"]["Q6_K"]["bits_per_weight"] == pytest.approx(6.5625, abs=1e-3)
    assert [k["layer_type"] for k in r["kept_higher_precision"]] == ["layers.*.attention.qkv.weight"]


def test_against_a_sharded_reference_folder(files, tmp_path):
    sd = tiny.build_components()["transformer"].state_dict()
    keys = sorted(sd)
    folder = tmp_path / "transformer"
    folder.mkdir()
    for i, part in enumerate((keys[::2], keys[1::2])):
        save_file({k: sd[k].contiguous() for k in part}, str(folder / f"diffusion_pytorch_model-{i:05d}.safetensors"))
    cmp = inspect_file(files["Q8_0"], against=folder)["against"]
    assert cmp["compared"] == files["n_file_tensors"] and 0 < cmp["mean_rel_error"] < EXPECT["Q8_0"][1]


def test_safetensors_summary(files):
    r = inspect_file(files["ref"])
    assert r["format"] == "safetensors" and set(r["types"]) == {"F32"} and r["bits_per_weight"] == 32.0
    assert r["weights"] == sum(v.numel() for v in tiny.build_components()["transformer"].state_dict().values())


def test_layer_type_groups_blocks():
    assert layer_type("layers.12.attention.qkv.weight") == "layers.*.attention.qkv.weight"
    assert layer_type("x_embedder.weight") == "x_embedder.weight"


def test_cli(files, tmp_path, capsys):
    assert main(["inspect", str(files["Q8_0"]), "--against", str(files["ref"])]) == 0
    out = capsys.readouterr().out
    assert "architecture lumina2" in out and "Q8_0" in out and "relative error against" in out
    assert main(["inspect", str(files["Q4_0"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["types"]["Q4_0"]["tensors"] > 0
    assert main(["inspect", str(tmp_path / "nope.gguf")]) == 1
    assert "not found" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["inspect", str(tmp_path / "notes.txt")]) == 2
    assert "neither a GGUF" in capsys.readouterr().err


def test_truncated_gguf_is_a_clear_error(files, tmp_path, capsys):
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(files["Q8_0"].read_bytes()[:-1000])
    assert main(["inspect", str(cut)]) == 1
    assert "truncated" in capsys.readouterr().err
