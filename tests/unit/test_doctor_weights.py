"""zturbo doctor lists as "on disk" only the weights that are: an empty cache has none."""

import json
import os
import subprocess
import sys

import pytest

from zturbo.cli import main


def test_an_empty_cache_has_no_precision_on_disk(tmp_path):
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    env.pop("HF_HUB_CACHE", None)
    proc = subprocess.run([sys.executable, "-m", "zturbo", "doctor"], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "precisions on disk: none (auto plans for bf16 too: downloaded on first use)" in proc.stdout
    assert "Tongyi-MAI/Z-Image-Turbo: not cached" in proc.stdout


@pytest.mark.parametrize("files,on_disk", [
    (["model_index.json", "transformer/config.json"], []),  # what a GGUF run caches: configs only
    (["model_index.json", "transformer/config.json", "transformer/diffusion_pytorch_model-00001-of-00003.safetensors"],
     ["bf16"]),
])
def test_bf16_is_on_disk_once_the_transformer_weights_are(tmp_path, monkeypatch, capsys, files, on_disk):
    import huggingface_hub.constants as c

    snap = tmp_path / "models--Tongyi-MAI--Z-Image-Turbo" / "snapshots" / ("b" * 40)
    for name in files:
        (snap / name).parent.mkdir(parents=True, exist_ok=True)
        (snap / name).write_text("{}")
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("b" * 40)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    assert main(["doctor", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["auto"]["precisions_on_disk"] == on_disk
    assert report["weights"]["hub_repo"]["snapshots"][0]["files"] == len(files)
