"""sha256 of weights files, computed once per (path, size, mtime) and remembered in the cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .paths import cache_dir
from .atomic import write_text_atomic


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def cached_sha256(path: str | os.PathLike) -> str:
    path = Path(path).resolve()
    st = path.stat()
    key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    index_file = cache_dir() / "hashes.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    if key not in index:
        index[key] = sha256_file(path)
        write_text_atomic(index_file, json.dumps(index, indent=1))
    return index[key]


def recorded_file(path: str | None, sha: str, *, image: str, what: str, name: str | None, flag: str,
                  scale: str = "") -> str:
    """A file an image's recipe names (a LoRA, a ControlNet), for --from: at its recorded path and unchanged,
    else an InvalidParams saying how to give it (`flag` FILE`scale`)."""
    from .errors import InvalidParams

    if not path or not os.path.isfile(path):
        raise InvalidParams(f"{image} was made with the {what} {name} (sha256 {sha[:12]}), not found at {path}: "
                            f"put it back there, or give {flag} FILE{scale} with a copy of it")
    if sha and cached_sha256(path) != sha:
        raise InvalidParams(f"{image} was made with the {what} {path} (sha256 {sha[:12]}), which has changed since "
                            f"(now {cached_sha256(path)[:12]}): give {flag} {path}{scale} to use it anyway")
    return path
