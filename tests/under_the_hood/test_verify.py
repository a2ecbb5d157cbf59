"""zturbo verify: the verdict logic against configs that hold and configs that differ, and a full run on tiny."""

import copy
import json

import pytest

from zturbo.cli import main
from zturbo.verify import (
    CANT, DIFFERS, HOLDS, PUBLISHED_CONFIGS, architecture_checks, gguf_checks, near, reference_models, rounds_to,
    same_minor,
)


def arch(configs=None) -> dict:
    models, _ = reference_models(configs)
    rows = architecture_checks(models["transformer"], models["text_encoder"], models["vae"], source="test")
    return {r.claim: r for r in rows}


def changed(**parts) -> dict:
    cfg = copy.deepcopy(PUBLISHED_CONFIGS)
    for part, values in parts.items():
        cfg[part].update(values)
    return cfg


@pytest.fixture(scope="module")
def published():
    return arch(copy.deepcopy(PUBLISHED_CONFIGS))


def test_published_architecture_counts_6_15b_offline(published):
    assert published["DiT parameters"].verdict == HOLDS
    assert published["DiT parameters"].measured.startswith("6,15")  # 6,154,908,736 counted on the meta device
    for claim in ("DiT layers", "DiT hidden width", "Text encoder", "VAE downscale", "Latent channels",
                  "Patch size", "Sizes divisible by"):
        assert published[claim].verdict == HOLDS, published[claim]


def test_heads_differ_on_the_published_config(published):
    heads = published["DiT attention heads"]
    assert heads.verdict == DIFFERS and heads.measured.startswith("30")
    assert "text encoder" in heads.why


def test_a_config_with_32_heads_holds_and_a_wider_dit_differs():
    rows = arch(changed(transformer=dict(dim=4096, n_heads=32, n_kv_heads=32)))
    assert rows["DiT attention heads"].verdict == HOLDS
    assert rows["DiT hidden width"].verdict == DIFFERS and rows["DiT parameters"].verdict == DIFFERS


def test_fewer_layers_differ():
    rows = arch(changed(transformer=dict(n_layers=28)))
    assert rows["DiT layers"].verdict == DIFFERS and rows["DiT layers"].measured.startswith("28")
    assert rows["DiT parameters"].verdict == DIFFERS


def test_smaller_text_encoder_and_shallower_vae_differ():
    rows = arch(changed(text_encoder=dict(num_hidden_layers=18),
                        vae=dict(block_out_channels=[128, 256, 512], down_block_types=["DownEncoderBlock2D"] * 3,
                                 up_block_types=["UpDecoderBlock2D"] * 3)))
    assert rows["Text encoder"].verdict == DIFFERS
    assert rows["VAE downscale"].verdict == DIFFERS and rows["VAE downscale"].measured.startswith("4x")
    assert rows["Sizes divisible by"].verdict == DIFFERS


def test_verdict_helpers():
    assert near(6.1549e9, 6.15e9, 0.005) == HOLDS and near(5.9e9, 6.15e9, 0.005) == DIFFERS
    assert rounds_to(7.224707136, "7.22") == HOLDS and rounds_to(7.3, "7.22") == DIFFERS
    assert rounds_to(12.31, "12.3") == HOLDS
    assert same_minor("0.39.0", "0.39.0.dev0") == HOLDS and same_minor("0.42.1", "0.39.0.dev0") == DIFFERS


def test_gguf_sizes_from_files(tmp_path):
    files = {}
    for name, size in (("z-image-turbo-Q8_0.gguf", 7_224_707_136), ("z-image-turbo-Q4_K_M.gguf", 4_100_000_000)):
        path = tmp_path / name
        with open(path, "wb") as f:
            f.truncate(size)  # sparse: the size is real, the disk use is not
        files[name] = str(path)
    rows = {r.claim: r for r in gguf_checks(locate=files.get)}
    assert rows["GGUF Q8 size"].verdict == HOLDS and "7,224,707,136" in rows["GGUF Q8 size"].measured
    assert rows["GGUF Q4 size"].verdict == DIFFERS
    assert rows["GGUF Q2 size"].verdict == CANT and "hf download" in rows["GGUF Q2 size"].why


def test_gguf_sizes_from_the_hf_cache(tmp_path, monkeypatch):
    """The real lookup: a file in the hub cache layout is found without network."""
    from zturbo import defaults

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / ("models--" + defaults.GGUF_REPO.replace("/", "--"))
    snap = repo / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    with open(snap / defaults.GGUF_FILES["q2"], "wb") as f:
        f.truncate(3_640_000_000)
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    rows = {r.claim: r for r in gguf_checks()}
    assert rows["GGUF Q2 size"].verdict == HOLDS, rows["GGUF Q2 size"]


@pytest.fixture(scope="module")
def tiny_result(tiny_engine):
    from zturbo.verify import run_verify

    return run_verify(tiny_engine)


def test_full_run_on_tiny_shows_where_the_article_is_out_of_date(tiny_result):
    rows = {c["claim"]: c for c in tiny_result["checks"]}
    assert rows["Steps 9 -> passes"]["verdict"] == DIFFERS and rows["Steps 9 -> passes"]["measured"].startswith("9 passes")
    assert rows["Steps 8 -> passes"]["verdict"] == HOLDS
    assert rows["Guidance 0"]["verdict"] == HOLDS and rows["Guidance > 0"]["verdict"] == HOLDS
    assert rows["Prompt token cap"]["verdict"] == HOLDS and rows["Prompt token cap"]["measured"].startswith("512 of")
    assert rows["Conditioning layer"]["verdict"] == HOLDS and "hidden_states[-2]" in rows["Conditioning layer"]["measured"]
    assert rows["DiT attention heads"]["verdict"] == DIFFERS and "meta-device" in rows["DiT attention heads"]["source"]
    assert rows["Single stream"]["verdict"] == HOLDS and rows["3D RoPE"]["verdict"] == HOLDS
    assert rows["diffusers version"]["verdict"] == DIFFERS
    assert rows["Pipeline parts"]["verdict"] == HOLDS and "ZImageTransformer2DModel" in rows["Pipeline parts"]["measured"]
    assert tiny_result["summary"][DIFFERS] >= 3 and "tiny" in tiny_result["note"]


def test_table_and_exit_codes(tiny_result, monkeypatch):
    from zturbo import verify
    from zturbo.verify import render_table

    table = render_table(tiny_result)
    assert "claim" in table and "article says" in table and "measured" in table and "verdict" in table
    assert "differ" in table.splitlines()[-1]
    # the CLI's exit status on the measured result (re-measuring costs CI time, not coverage)
    args = ["verify", "--model", "tiny", "--device", "cpu", "--quiet"]
    monkeypatch.setattr(verify, "run_verify", lambda engine: tiny_result)
    assert main(args) == 0 and main(args + ["--strict"]) == 1
    agreeing = dict(tiny_result, summary=dict(tiny_result["summary"], **{DIFFERS: 0}))
    monkeypatch.setattr(verify, "run_verify", lambda engine: agreeing)
    assert main(args + ["--strict"]) == 0


def test_cli_json_parses(tiny_result, capsys, monkeypatch):
    from zturbo import verify

    monkeypatch.setattr(verify, "run_verify", lambda engine: tiny_result)
    assert main(["verify", "--model", "tiny", "--device", "cpu", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {c["verdict"] for c in doc["checks"]} <= {HOLDS, DIFFERS, CANT} and doc["summary"][HOLDS] > 10


def test_gguf_parameters_count_their_dequantized_shape(tiny_engine):
    """A GGUF transformer stores bytes; the count must be the weights, as for the bf16 model."""
    from zturbo import Engine
    from zturbo.trace import count_parameters

    q8 = Engine.load(model="tiny", quant="q8", device="cpu")
    assert count_parameters(q8.pipe.transformer) == count_parameters(tiny_engine.pipe.transformer)
    assert count_parameters(q8.pipe.transformer) != sum(p.numel() for p in q8.pipe.transformer.parameters())
