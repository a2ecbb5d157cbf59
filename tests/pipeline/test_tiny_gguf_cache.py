"""The cached tiny GGUF files follow the tiny model: a file written by an older tiny model (other sizes or
weights) is rewritten, not loaded into an error."""

import torch

from zturbo.models import gguf as gguf_files
from zturbo.models import loader


def test_stale_tiny_gguf_in_cache_is_rewritten(tmp_path, monkeypatch):
    monkeypatch.setenv("ZTURBO_CACHE", str(tmp_path))
    path = tmp_path / "tiny" / "z-image-turbo-tiny-Q8_0.gguf"
    path.parent.mkdir(parents=True)
    # a GGUF from some other (older, smaller) tiny transformer
    gguf_files.write_gguf({"x_pad_token": torch.zeros(1, 64)}, path, "Q8_0")
    assert loader._tiny_gguf("q8") == path
    loaded = loader.load_pipeline("tiny", quant="q8", device="cpu")
    assert loaded.info.weights_file == str(path)
    # the second call reuses the rewritten file
    mtime = path.stat().st_mtime_ns
    loader._tiny_gguf("q8")
    assert path.stat().st_mtime_ns == mtime
