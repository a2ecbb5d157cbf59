"""User directories, each overridable by environment (tests redirect them to a temp dir)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """zturbo's own cache: file hashes, tiny GGUF files. ZTURBO_CACHE overrides."""
    base = os.environ.get("ZTURBO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "zturbo"
    )
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def compile_cache_dir() -> str:
    """Where torch.compile's artifacts live: TORCHINDUCTOR_CACHE_DIR if the user set it, else zturbo's cache."""
    from . import defaults

    return os.environ.get("TORCHINDUCTOR_CACHE_DIR") or str(cache_dir() / defaults.COMPILE_CACHE_DIR)
