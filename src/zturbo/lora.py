"""LoRA files: named with a scale, checked, and applied with diffusers' own Z-Image LoRA loader.

diffusers' ZImageLoraLoaderMixin converts the common layouts (diffusers/peft, kohya `lora_unet_*`,
ComfyUI / ai-toolkit `diffusion_model.*`, DiffSynth `*.lora_A.default.*`, dotted `lora.down`, fused
`qkv`, LoKr) to peft keys; zturbo then checks that every converted key lands on a module of this
transformer with the right shape, because diffusers only logs a warning (or nothing at all) for keys that
match nothing, and a LoRA that silently does nothing is the worst outcome. The adapters are then
merged into the weights (fuse_lora), so a pass costs what it costs without a LoRA and --fast's rewrites
and compile see plain Linear layers. A GGUF transformer cannot take merged weights: there the adapters
stay unfused, each pass adding the low-rank matmuls.

This module is light to import (no torch until apply_loras runs): LoadOptions validates with it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from .errors import InvalidParams

SUFFIX = ".safetensors"
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle")
ADAPTER_PREFIX = "zturbo_lora_"


def parse_arg(value: str) -> tuple[str, float]:
    """`--lora FILE[:SCALE]` -> (FILE, SCALE). A value ending in .safetensors is all file name (so a
    Windows path's drive colon is never taken for a scale); otherwise the part after the last colon is
    the scale and must be a number."""
    if ":" in value and not value.lower().endswith(SUFFIX):
        path, scale = value.rsplit(":", 1)
        return path, scale_value(scale, path)
    return value, 1.0


def scale_value(scale: Any, path: str) -> float:
    if isinstance(scale, bool):
        scale = repr(scale)  # True is not 1.0
    try:
        out = float(scale)
    except (TypeError, ValueError):
        raise InvalidParams(f"LoRA {path}: scale {scale!r} is not a number (e.g. {path}:0.8)") from None
    if not math.isfinite(out):
        raise InvalidParams(f"LoRA {path}: scale must be a finite number, got {scale!r}")
    return out


def check_file(path: str) -> None:
    """A LoRA file that exists and is safetensors; pickled files are refused before anything reads them."""
    suffix = Path(path).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        raise InvalidParams(f"LoRA {path}: pickled {suffix} files are refused (loading a pickle can run any code); "
                            f"use a {SUFFIX} copy of it")
    if suffix != SUFFIX:
        raise InvalidParams(f"LoRA {path}: not a {SUFFIX} file (zturbo loads LoRAs from {SUFFIX} only)")
    if not os.path.isfile(path):
        raise InvalidParams(f"LoRA {path}: no such file")


def normalize(loras: Any) -> tuple[tuple[str, float], ...]:
    """LoadOptions.loras: a sequence of (path, scale) pairs or bare paths (scale 1.0), checked."""
    if loras is None:
        return ()
    if isinstance(loras, (str, os.PathLike)):
        loras = [loras]
    out: list[tuple[str, float]] = []
    for item in loras:
        if isinstance(item, (str, os.PathLike)):
            path, scale = os.fspath(item), 1.0
        elif isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], (str, os.PathLike)):
            path, scale = os.fspath(item[0]), item[1]
        else:
            raise InvalidParams(f"loras takes (path, scale) pairs, e.g. (('style.safetensors', 0.8),), got {item!r}")
        scale = scale_value(scale, path)
        check_file(path)
        if any(os.path.realpath(path) == os.path.realpath(p) for p, _ in out):
            raise InvalidParams(f"LoRA {path} is given twice: give it once, with the scale you want")
        out.append((path, scale))
    return tuple(out)


def guess_format(keys: list[str]) -> str:
    """The trainer layout a LoRA's raw keys look like, for error messages."""
    has = lambda s: any(s in k for k in keys)  # noqa: E731
    start = lambda s: any(k.startswith(s) for k in keys)  # noqa: E731
    if has(".lokr_"):
        return "LoKr (LyCORIS / ai-toolkit)"
    if start("lora_unet_") or start("lora_te"):
        return "kohya (lora_unet_*)"
    if start("diffusion_model."):
        return "ComfyUI / ai-toolkit (diffusion_model.*)"
    if has(".default."):
        return "DiffSynth / peft with adapter name (*.lora_A.default.*)"
    if start("transformer.") and has("lora_A"):
        return "diffusers / peft (transformer.*.lora_A/B)"
    if has("lora_A") or has("lora_down") or has("lora.down"):
        return "LoRA without a known prefix"
    return "not a LoRA layout zturbo knows"


def _module_of(key: str) -> str:
    key = key.removeprefix("transformer.")
    for marker in (".lora_A", ".lora_B", ".lora_magnitude_vector", ".lokr_"):
        if marker in key:
            return key.split(marker)[0]
    return key.rsplit(".", 1)[0]


def _mismatches(state_dict: dict, transformer) -> list[str]:
    """Converted keys that do not land on a Linear of `transformer` with matching shapes."""
    import torch

    modules = dict(transformer.named_modules())
    bad = []
    for key, value in state_dict.items():
        module = modules.get(_module_of(key)) if key.startswith("transformer.") else None
        if hasattr(module, "get_base_layer"):  # already wrapped by an earlier LoRA's adapter
            module = module.get_base_layer()
        if not isinstance(module, torch.nn.Linear):
            bad.append(key)
        elif ".lora_A." in key and value.shape[-1] != module.in_features:
            bad.append(f"{key} (in {value.shape[-1]}, model {module.in_features})")
        elif ".lora_B.weight" in key and value.shape[0] != module.out_features:
            bad.append(f"{key} (out {value.shape[0]}, model {module.out_features})")
    return bad


def read(pipe, path: str) -> tuple[dict, dict | None]:
    """diffusers' conversion of `path` to peft keys for Z-Image, checked against pipe.transformer."""
    from safetensors import safe_open

    try:
        with safe_open(path, "pt") as f:
            raw = list(f.keys())
    except Exception as exc:  # safetensors raises its own error types for a damaged header
        raise InvalidParams(f"LoRA {path}: not a readable {SUFFIX} file ({exc})") from None
    fmt = guess_format(raw)
    try:
        state_dict, metadata = pipe.lora_state_dict(path, return_lora_metadata=True)
    except Exception as exc:  # the converters raise ValueError, KeyError, IndexError... for layouts they miss
        raise InvalidParams(f"LoRA {path}: diffusers' Z-Image converter cannot place its keys (format looks like "
                            f"{fmt}; e.g. {', '.join(raw[:3])}): {str(exc).splitlines()[0][:200]}") from None
    if not state_dict:
        raise InvalidParams(f"LoRA {path}: holds no weights")
    bad = _mismatches(state_dict, pipe.transformer)
    if bad:
        n = len(state_dict)
        what = (f"none of its {n} keys match" if len(bad) == n else f"{len(bad)} of its {n} keys match no layer of")
        raise InvalidParams(
            f"LoRA {path}: {what} this Z-Image transformer (format looks like {fmt}; unmatched after diffusers' "
            f"conversion, e.g. {', '.join(bad[:3])}): a LoRA for another model, or a layout diffusers does not convert")
    return state_dict, metadata


def load_adapter(pipe, path: str, name: str) -> None:
    """Read and check `path` (read), then add it to pipe.transformer as the peft adapter `name`."""
    import warnings

    state_dict, metadata = read(pipe, path)
    with warnings.catch_warnings():  # peft's "multiple adapters" note: several LoRAs are what was asked for
        warnings.filterwarnings("ignore", message="Already found a `peft_config`")
        try:
            pipe.load_lora_into_transformer(state_dict, transformer=pipe.transformer, adapter_name=name,
                                            metadata=metadata, _pipeline=pipe)
        except (ValueError, TypeError, KeyError, RuntimeError) as exc:  # peft refusing the config or a tensor
            raise InvalidParams(f"LoRA {path}: peft could not load it: {str(exc).splitlines()[0][:200]}") from None


def apply_loras(pipe, loras: tuple[tuple[str, float], ...], fuse: bool = True) -> list[dict[str, Any]]:
    """Load each (path, scale) into pipe.transformer, set the scales and, with `fuse`, merge them into the
    weights and drop the adapter layers. Returns what each image's recipe records about them."""
    from .hashing import cached_sha256

    names = []
    for i, (path, _) in enumerate(loras):
        name = f"{ADAPTER_PREFIX}{i}"
        load_adapter(pipe, path, name)
        names.append(name)
    if names:
        pipe.set_adapters(names, adapter_weights=[scale for _, scale in loras])
        if fuse:
            pipe.fuse_lora(components=["transformer"], adapter_names=names, lora_scale=1.0)
            pipe.unload_lora_weights()  # the merged weights stay; plain Linear layers again
    return [{"name": Path(path).name, "path": os.path.abspath(path), "sha256": cached_sha256(path),
             "scale": scale, "fused": fuse} for path, scale in loras]


def a1111_hashes(loras: list[dict[str, Any]]) -> str | None:
    """A1111's `Lora hashes` field: "name: first 12 hex of the file's sha256, ..." in quotes."""
    if not loras:
        return None
    return '"' + ", ".join(f"{Path(r['name']).stem}: {r['sha256'][:12]}" for r in loras) + '"'


def from_recipe(records: list[dict[str, Any]], image: str) -> tuple[tuple[str, float], ...]:
    """The LoRAs an image's recipe names, for --from: each file at its recorded path, unchanged."""
    from .hashing import recorded_file

    out = []
    for r in records:
        scale = r.get("scale", 1.0)
        path = recorded_file(r.get("path") or r.get("name"), r.get("sha256") or "", image=image, what="LoRA",
                             name=r.get("name"), flag="--lora", scale=f":{scale:g}")
        out.append((path, float(scale)))
    return tuple(out)
