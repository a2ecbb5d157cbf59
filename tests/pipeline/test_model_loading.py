"""Real loading paths, exercised offline: GGUF files in the unsloth layout, the HF cache, local folders."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from zturbo import CorruptWeights, Engine, GenerationParams, WeightsNotFound
from zturbo.models import gguf as gguf_files
from zturbo.models import tiny

P = GenerationParams(prompt="a robot", seed=3, width=64, height=64, rng="cpu", steps=4)


def final_latents(engine, params=P):
    out = []
    engine.generate(params, on_step=lambda s, n, lat: out.append(lat.clone()) if s == n else None)
    return out[0]


@pytest.fixture(scope="module")
def tiny_state():
    return tiny.build_components()["transformer"].state_dict()


def test_file_layout_matches_unsloth_names(tiny_state):
    keys = set(gguf_files.to_file_layout(tiny_state))
    assert "layers.0.attention.qkv.weight" in keys
    assert "layers.0.attention.out.weight" in keys
    assert "layers.0.attention.q_norm.weight" in keys and "layers.0.attention.k_norm.weight" in keys
    assert any(k.startswith("x_embedder.") for k in keys) and any(k.startswith("final_layer.") for k in keys)
    assert not any(".to_q." in k or ".to_k." in k or "all_" in k for k in keys)


@pytest.mark.parametrize("quant,bound", [("Q8_0", 0.02), ("BF16", 0.01), ("Q4_0", 0.25)])
def test_tiny_gguf_loads_through_diffusers_within_error(tmp_path, tiny_state, tiny_engine, quant, bound):
    path = gguf_files.write_gguf(tiny_state, tmp_path / f"z-{quant}.gguf", quant)
    engine = Engine.load(model="tiny", gguf=path, device="cpu")
    from diffusers.quantizers.gguf.utils import GGUFParameter

    assert isinstance(engine.pipe.transformer.layers[0].attention.to_q.weight, GGUFParameter)
    ref, got = final_latents(tiny_engine), final_latents(engine)
    rel = ((got - ref).norm() / ref.norm()).item()
    assert 0 < rel < bound, rel  # quantised, so not identical; close, by the stated bound
    rec = engine.generate(P).recipes[0]
    assert rec["model"]["quant"] == "gguf" and rec["model"]["weights_file"] == str(path)


def test_quant_q8_on_tiny_writes_and_reuses_a_cached_file():
    a = Engine.load(model="tiny", quant="q8", device="cpu")
    assert a.info.quant == "q8" and a.info.weights_file.endswith("tiny-Q8_0.gguf")
    mtime = os.path.getmtime(a.info.weights_file)
    b = Engine.load(model="tiny", quant="q8", device="cpu")
    assert os.path.getmtime(b.info.weights_file) == mtime and a.info.weights_sha256 == b.info.weights_sha256


def test_truncated_gguf_is_named(tmp_path, tiny_state):
    path = gguf_files.write_gguf(tiny_state, tmp_path / "z.gguf", "Q8_0")
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptWeights, match="cut.gguf.*truncated"):
        Engine.load(model="tiny", gguf=cut, device="cpu")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file at all")
    with pytest.raises(CorruptWeights, match="bad.gguf is not a GGUF file"):
        Engine.load(model="tiny", gguf=bad, device="cpu")
    with pytest.raises(WeightsNotFound, match="missing.gguf"):
        Engine.load(model="tiny", gguf=tmp_path / "missing.gguf", device="cpu")


def _save_tiny_folder(folder: Path) -> Path:
    tiny.build_pipeline().save_pretrained(folder)
    return folder


def test_hub_weights_missing_offline_says_what_to_do():
    with pytest.raises(WeightsNotFound) as err:
        Engine.load(model="Tongyi-MAI/Z-Image-Turbo", device="cpu")
    msg = str(err.value)
    assert "HF_HUB_OFFLINE" in msg and "hf download Tongyi-MAI/Z-Image-Turbo" in msg and "--model tiny" in msg
    with pytest.raises(WeightsNotFound) as err:
        Engine.load(model="Tongyi-MAI/Z-Image-Turbo", quant="q8", device="cpu")
    msg = str(err.value)
    # a GGUF replaces only the transformer: the message names the base repo's parts too, and both commands
    assert "z-image-turbo-Q8_0.gguf" in msg and "text encoder, VAE" in msg and "transformer/config.json" in msg
    assert '`hf download Tongyi-MAI/Z-Image-Turbo --exclude "transformer/*.safetensors"`' in msg
    assert "`hf download unsloth/Z-Image-Turbo-GGUF z-image-turbo-Q8_0.gguf`" in msg


def test_a_local_gguf_without_the_base_repo_and_no_network_fails_at_once(tmp_path, monkeypatch):
    """--gguf FILE with only that file on disk: one request, then one message; no 30 s of hub retries."""
    import diffusers
    import huggingface_hub

    from zturbo.models import loader

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loader, "_REACHABLE", {})
    requests = []

    def unreachable(self, repo, **kw):
        requests.append(repo)
        raise ConnectionError("Name or service not known")

    def no_retries(*a, **kw):
        raise AssertionError("a diffusers loader was called: it would retry the hub for ~25 s")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    monkeypatch.setattr(diffusers.ZImagePipeline, "from_pretrained", no_retries)
    monkeypatch.setattr(diffusers.ZImageTransformer2DModel, "from_single_file", no_retries)
    path = tmp_path / "z-image-turbo-Q5_K_M.gguf"
    gguf_files.write_gguf(tiny.build_components()["transformer"].state_dict(), path)
    with pytest.raises(WeightsNotFound) as err:
        Engine.load(model="Tongyi-MAI/Z-Image-Turbo", gguf=str(path), device="cpu")
    msg = str(err.value)
    assert requests == ["Tongyi-MAI/Z-Image-Turbo"]
    assert "the hub could not be reached" in msg and str(path) in msg and "text encoder, VAE" in msg
    assert '--exclude "transformer/*.safetensors"' in msg and "unsloth" not in msg


def test_gguf_missing_without_network_fails_at_once_and_names_the_one_file(tmp_path, monkeypatch):
    """Not cached and the hub unreachable: one quick request, not hf_hub_download's ~25 s of retries."""
    import huggingface_hub

    from zturbo.models.loader import _hub_file

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    calls = []

    def download(repo, filename, local_files_only=False, **kw):
        calls.append(local_files_only)
        raise huggingface_hub.errors.LocalEntryNotFoundError("not cached") if local_files_only else AssertionError

    def unreachable(self, repo, **kw):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", unreachable)
    with pytest.raises(WeightsNotFound) as err:
        _hub_file("unsloth/Z-Image-Turbo-GGUF", "z-image-turbo-Q8_0.gguf")
    assert calls == [True]
    msg = str(err.value)
    assert "the hub could not be reached" in msg
    assert "`hf download unsloth/Z-Image-Turbo-GGUF z-image-turbo-Q8_0.gguf`" in msg


def test_local_folder_loads_and_matches_tiny(tmp_path, tiny_engine):
    folder = _save_tiny_folder(tmp_path / "zimage")
    engine = Engine.load(model=str(folder), device="cpu", dtype=torch.float32)
    assert engine.info.source == "local"
    a = np.asarray(engine.generate(P).image)
    b = np.asarray(tiny_engine.generate(P).image)
    assert np.array_equal(a, b)


def test_weights_in_hf_cache_are_found_offline(tmp_path, monkeypatch):
    """A hub id whose files are in the HF cache loads with HF_HUB_OFFLINE=1, GGUF included."""
    hub = tmp_path / "hf" / "hub"
    snap = hub / "models--Tongyi-MAI--Z-Image-Turbo" / "snapshots" / "0123abcd"
    _save_tiny_folder(snap)
    (hub / "models--Tongyi-MAI--Z-Image-Turbo" / "refs").mkdir(parents=True)
    (hub / "models--Tongyi-MAI--Z-Image-Turbo" / "refs" / "main").write_text("0123abcd")
    gsnap = hub / "models--unsloth--Z-Image-Turbo-GGUF" / "snapshots" / "feed0001"
    gsnap.mkdir(parents=True)
    gguf_files.write_gguf(tiny.build_components()["transformer"].state_dict(), gsnap / "z-image-turbo-Q8_0.gguf")
    (hub / "models--unsloth--Z-Image-Turbo-GGUF" / "refs").mkdir(parents=True)
    (hub / "models--unsloth--Z-Image-Turbo-GGUF" / "refs" / "main").write_text("feed0001")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(hub))

    engine = Engine.load(model="Tongyi-MAI/Z-Image-Turbo", device="cpu", dtype=torch.float32)
    assert engine.info.source == "hub" and engine.info.revision == "0123abcd"
    q8 = Engine.load(model="Tongyi-MAI/Z-Image-Turbo", quant="q8", device="cpu", dtype=torch.float32)
    assert q8.info.weights_file.endswith("z-image-turbo-Q8_0.gguf") and q8.info.quant == "q8"
    assert q8.generate(P).passes == 4


def test_truncated_safetensors_in_local_folder_is_named(tmp_path):
    folder = _save_tiny_folder(tmp_path / "zimage")
    victim = next((folder / "transformer").glob("*.safetensors"))
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 100])
    with pytest.raises(CorruptWeights, match=f"{victim.name}.*truncated"):
        Engine.load(model=str(folder), device="cpu")


def test_missing_local_folder():
    with pytest.raises(WeightsNotFound, match="does not exist"):
        Engine.load(model="./no/such/folder", device="cpu")
