"""sha256 of weights files, computed once per (path, size, mtime) and remembered in the cache."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
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
    return cached_sha256_many([path])[0]


def cached_sha256_many(paths) -> list[str]:
    """cached_sha256 of each path; the ones not yet in the cache are hashed at the same time, one thread each
    (hashlib drops the GIL while it hashes: a model's shards take about as long as the largest one)."""
    resolved = [Path(p).resolve() for p in paths]
    keys = [f"{p}|{st.st_size}|{st.st_mtime_ns}" for p, st in ((p, p.stat()) for p in resolved)]
    index_file = cache_dir() / "hashes.json"
    try:
        index = json.loads(index_file.read_text())
    except (OSError, ValueError):
        index = {}
    missing = {k: p for k, p in zip(keys, resolved) if k not in index}
    if missing:
        with ThreadPoolExecutor(max_workers=min(len(missing), os.cpu_count() or 1)) as pool:
            index.update(zip(missing, pool.map(sha256_file, missing.values())))
        write_text_atomic(index_file, json.dumps(index, indent=1))
    return [index[k] for k in keys]


def recorded_file(path: str | None, sha: str, *, image: str, what: str, name: str | None, flag: str,
                  scale: str = "") -> str:
    """A file an image's recipe names (a LoRA, a ControlNet), for --from: at its recorded path and unchanged,
    else an InvalidParams saying how to give it (`flag` FILE`scale`)."""
    from .errors import InvalidParams

    if not path or not os.path.isfile(path):
        raise InvalidParams(f"{image} was made with the {what} {name} (sha256 {sha[:12]}), not found at {path}: "
                            f"put it back there, or give {flag} FILE{scale} with a copy of it")
    now = cached_sha256(path) if sha else sha
    if now != sha:
        raise InvalidParams(f"{image} was made with the {what} {path} (sha256 {sha[:12]}), which has changed since "
                            f"(now {now[:12]}): give {flag} {path}{scale} to use it anyway")
    return path
