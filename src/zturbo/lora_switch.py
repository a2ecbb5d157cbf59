"""Per-request LoRAs (zturbo serve --lora-dir): files from one folder, switched per job on unfused weights.

LoraFolder lists the .safetensors files of one folder and resolves a request's names inside it only (no
sub-folders, no `..`, no absolute paths, no link that leads out). LoraSwitch keeps the base weights as
loaded: each file becomes a peft adapter the first time a job asks for it (read and checked by lora.py,
exactly as a --lora file is), and each job turns on only its own set (set_adapters), or none
(disable_lora: the base layers alone, so a job without LoRAs gets the base model's pixels bit for bit).
Adapters stay loaded, keyed by the file's sha256 (an edited file is a new adapter); past
defaults.SERVER_LORA_ADAPTERS_KEPT the least recently used one is deleted.

Light to import (no torch): the server validates requests with it.
"""

from __future__ import annotations

import collections
import os
import reprlib
import threading
from pathlib import Path
from typing import Any

from . import defaults
from .errors import InvalidParams
from .lora import ADAPTER_PREFIX, PICKLE_SUFFIXES, SUFFIX, load_adapter, read, scale_value

REQUEST_PREFIX = "zturbo_request_"
EXAMPLE = '[{"name": "style.safetensors", "scale": 0.8}]'
SPEED_REFUSED = ("per-request LoRAs (--lora-dir) run as unfused adapters on the transformer's Linear layers, which "
                 "--fast and --gguf-mode bf16|fp8|auto rewrite (fused QKV, FP8) and compile: drop --fast / --gguf-mode, "
                 "or merge fixed LoRAs at load time with --lora FILE:SCALE")


class LoraFolder:
    """The LoRA files a server may load: the .safetensors files directly inside one folder."""

    def __init__(self, folder: str | os.PathLike):
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise InvalidParams(f"--lora-dir {folder}: no such folder (give the folder that holds your "
                                f"{SUFFIX} LoRA files)")
        self.root = path.resolve()

    def list(self) -> list[dict[str, Any]]:
        """name, bytes and sha256 of each file (hashes computed once per file version: hashing.cached_sha256)."""
        from .hashing import cached_sha256

        out = []
        for name in self.names():
            path = self.root / name
            out.append({"name": name, "bytes": path.stat().st_size, "sha256": cached_sha256(path)})
        return out

    def names(self) -> list[str]:
        return [e.name for e in sorted(self.root.iterdir()) if self._inside(e.name) is not None]

    def _inside(self, name: str) -> Path | None:
        """The regular .safetensors file `name` directly in the folder, links resolved; None otherwise."""
        if not name.lower().endswith(SUFFIX) or name.startswith("."):
            return None
        try:
            path = (self.root / name).resolve(strict=True)
        except (OSError, RuntimeError):
            return None
        return path if path.parent == self.root and path.is_file() else None

    def resolve(self, name: Any) -> str:
        """The path of the LoRA called `name`; InvalidParams (saying what to send) for anything else."""
        if not isinstance(name, str) or not name:
            raise InvalidParams(f"a LoRA's name must be a file name from GET /api/loras, got {reprlib.repr(name)}")
        shown = reprlib.repr(name)
        if any(c in name for c in "/\\\0") or name in (".", "..") or os.path.isabs(name):
            raise InvalidParams(f"LoRA {shown} is not a file name: give a name from GET /api/loras "
                                "(files directly in the server's --lora-dir; no folders, no ..)")
        suffix = Path(name).suffix.lower()
        if suffix != SUFFIX:
            why = " (a pickle can run any code)" if suffix in PICKLE_SUFFIXES else ""
            raise InvalidParams(f"LoRA {shown}: only {SUFFIX} files are loaded{why}: give a name from GET /api/loras")
        path = self._inside(name)
        if path is None:
            if (self.root / name).is_symlink() or (self.root / name).is_file():
                raise InvalidParams(f"LoRA {shown} leads outside the server's --lora-dir (a link): refused")
            raise InvalidParams(f"no LoRA {shown} in the server's --lora-dir: GET /api/loras lists them")
        return str(path)

    def request(self, loras: Any) -> tuple[tuple[str, float], ...]:
        """A request's `loras` ([{"name": ..., "scale": ...}], scale 1 when left out) as (path, scale) pairs."""
        if loras is None:
            return ()
        if not isinstance(loras, list):
            raise InvalidParams(f"loras must be a list like {EXAMPLE}, got {reprlib.repr(loras)}")
        if len(loras) > defaults.SERVER_MAX_LORAS:
            raise InvalidParams(f"{len(loras)} LoRAs in one request: at most {defaults.SERVER_MAX_LORAS}")
        out: list[tuple[str, float]] = []
        for item in loras:
            if not isinstance(item, dict) or "name" not in item or set(item) - {"name", "scale"}:
                raise InvalidParams(f"each LoRA is an object with a name and an optional scale, like {EXAMPLE}, "
                                    f"got {reprlib.repr(item)}")
            path = self.resolve(item["name"])
            if any(p == path for p, _ in out):
                raise InvalidParams(f"LoRA {item['name']} is given twice: give it once, with the scale you want")
            out.append((path, scale_value(item.get("scale", 1.0), item["name"])))
        return tuple(out)


class LoraSwitch:
    """Adapters on one pipeline's transformer, turned on per job; the caller runs one job at a time."""

    def __init__(self, pipe, always: list[tuple[str, float]] | None = None):
        self.pipe = pipe
        self.always = list(always or ())  # load-time --lora adapters left unfused (a GGUF transformer): always on
        self.loaded: collections.OrderedDict[str, str] = collections.OrderedDict()  # sha256 -> adapter name
        self.checked: set[str] = set()
        self.lock = threading.Lock()  # check() runs on request threads, activate() on the worker

    def check(self, path: str) -> None:
        """lora.read's checks (readable, every key lands on a layer of this transformer), once per file version."""
        from .hashing import cached_sha256

        sha = cached_sha256(path)
        with self.lock:
            if sha not in self.checked and sha not in self.loaded:
                read(self.pipe, path)
                self.checked.add(sha)

    def activate(self, loras: tuple[tuple[str, float], ...]) -> list[dict[str, Any]]:
        """Turn on exactly `loras` (loading each new file once); what each image's recipe records of them."""
        from .hashing import cached_sha256

        with self.lock:
            active, records = list(self.always), []
            for path, scale in loras:
                sha = cached_sha256(path)
                name = self.loaded.get(sha)
                if name is None:
                    name = f"{REQUEST_PREFIX}{sha[:16]}"
                    load_adapter(self.pipe, path, name)
                    self.loaded[sha] = name
                self.loaded.move_to_end(sha)
                active.append((name, scale))
                records.append({"name": Path(path).name, "path": os.path.abspath(path), "sha256": sha,
                                "scale": scale, "fused": False})
            self._evict(keep={n for n, _ in active})
            if active:
                self.pipe.enable_lora()
                self.pipe.set_adapters([n for n, _ in active], adapter_weights=[s for _, s in active])
            elif self.loaded:
                self.pipe.disable_lora()  # the base layers alone: the base model's pixels
            return records

    def _evict(self, keep: set[str]) -> None:
        for sha, name in list(self.loaded.items()):
            if len(self.loaded) <= defaults.SERVER_LORA_ADAPTERS_KEPT:
                return
            if name not in keep:
                self.pipe.delete_adapters(name)
                del self.loaded[sha]


def load_time_adapters(records: list[dict[str, Any]]) -> list[tuple[str, float]]:
    """The adapters lora.apply_loras left unfused (named by position), with their scales."""
    return [(f"{ADAPTER_PREFIX}{i}", r["scale"]) for i, r in enumerate(records) if not r["fused"]]
