"""`zturbo inspect FILE`: what a .gguf or .safetensors weights file holds, and with a reference file,
how far each dequantized tensor is from it.

Reading and dequantizing is the `gguf` package's (GGUFReader, gguf.quants.dequantize) and
safetensors' (safe_open); this module only tallies. Tensors are grouped into layer types by
replacing block numbers with `*` (`layers.7.attention.qkv.weight` -> `layers.*.attention.qkv.weight`),
the unit in which llama.cpp's K-quant recipes pick a precision (the article's "sensitive layers
at higher precision").
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import re
import struct
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import CorruptWeights, InvalidParams, WeightsNotFound

_BLOCK_INDEX = re.compile(r"\.\d+\.")


def layer_type(name: str) -> str:
    return _BLOCK_INDEX.sub(".*.", name)


@dataclasses.dataclass
class TensorInfo:
    name: str
    dtype: str  # GGML type name (Q4_K, F32, ...) or safetensors dtype (BF16, F32, ...)
    shape: list[int]  # numpy order (rows, row length)
    elements: int
    nbytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.nbytes / max(1, self.elements)


@dataclasses.dataclass
class WeightsFile:
    path: Path
    format: str  # "gguf" | "safetensors"
    architecture: str | None
    tensors: list[TensorInfo]
    file_bytes: int
    load: Callable[[str], np.ndarray]  # name -> float32 array (dequantized)


def _gguf(path: Path) -> WeightsFile:
    import gguf

    from .models.gguf import check_gguf

    try:
        check_gguf(path)
    except CorruptWeights as exc:
        if "not a Z-Image transformer" not in str(exc):  # inspect reads any architecture
            raise
    reader = gguf.GGUFReader(str(path))
    field = reader.get_field("general.architecture")
    arch = bytes(field.parts[field.data[0]]).decode(errors="replace") if field is not None else None
    by_name = {t.name: t for t in reader.tensors}
    tensors = [
        TensorInfo(t.name, t.tensor_type.name, [int(d) for d in reversed(t.shape)], int(t.n_elements), int(t.n_bytes))
        for t in reader.tensors
    ]

    def load(name: str) -> np.ndarray:
        t = by_name[name]
        out = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(out, dtype=np.float32).reshape([int(d) for d in reversed(t.shape)])

    return WeightsFile(path, "gguf", arch, tensors, path.stat().st_size, load)


_ST_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4,
             "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def _safetensors(path: Path) -> WeightsFile:
    from safetensors import safe_open

    from .models.loader import check_safetensors

    check_safetensors(path)
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", None) or {}
    tensors = []
    for name, h in header.items():
        elements = math.prod(h["shape"]) if h["shape"] else 1
        tensors.append(TensorInfo(name, h["dtype"], list(h["shape"]), elements,
                                  h["data_offsets"][1] - h["data_offsets"][0]))

    def load(name: str) -> np.ndarray:
        with safe_open(str(path), framework="pt") as f:
            return f.get_tensor(name).float().numpy()

    arch = meta.get("architecture") or meta.get("format")
    return WeightsFile(path, "safetensors", arch, tensors, path.stat().st_size, load)


def _safetensors_folder(path: Path) -> WeightsFile:
    """A sharded checkpoint (diffusers' transformer/ folder): the union of its .safetensors files."""
    shards = [_safetensors(f) for f in sorted(path.glob("*.safetensors"))]
    if not shards:
        raise WeightsNotFound(f"{path} holds no .safetensors files")
    owner = {t.name: sh for sh in shards for t in sh.tensors}
    return WeightsFile(path, "safetensors", shards[0].architecture, [t for sh in shards for t in sh.tensors],
                       sum(sh.file_bytes for sh in shards), lambda name: owner[name].load(name))


def open_weights(path: str | Path) -> WeightsFile:
    path = Path(path).expanduser()
    if path.is_dir():
        return _safetensors_folder(path)
    if not path.is_file():
        raise WeightsNotFound(f"{path} not found: give a .gguf or .safetensors file (or a folder of .safetensors)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"GGUF":
        return _gguf(path)
    if path.suffix == ".safetensors":
        return _safetensors(path)
    raise InvalidParams(f"{path} is neither a GGUF file nor a .safetensors file: zturbo inspect reads those two")


def _reference_loader(ref: WeightsFile) -> Callable[[str], np.ndarray | None]:
    """name in the inspected file -> the reference tensor, mapping diffusers names to the GGUF layout
    (fused qkv, renamed out/norms) when the reference uses diffusers' names."""
    from .models.gguf import _TO_FILE_NAMES

    have = {t.name for t in ref.tensors}
    mapped: dict[str, Callable[[], np.ndarray]] = {n: (lambda n=n: ref.load(n)) for n in have}
    for key in have:
        if ".attention.to_q.weight" in key:
            base = key[: -len(".attention.to_q.weight")]
            parts = [f"{base}.attention.to_{x}.weight" for x in "qkv"]
            if all(p in have for p in parts):
                mapped[f"{base}.attention.qkv.weight"] = lambda parts=parts: np.concatenate([ref.load(p) for p in parts])
        renamed = key
        for new, old in _TO_FILE_NAMES.items():
            renamed = renamed.replace(new, old)
        if renamed != key:
            mapped.setdefault(renamed, lambda key=key: ref.load(key))
    return lambda name: mapped[name]() if name in mapped else None


def inspect_file(path: str | Path, against: str | Path | None = None) -> dict:
    """Summary of one weights file (and its error against a reference file). JSON-able."""
    wf = open_weights(path)
    total_el = sum(t.elements for t in wf.tensors)
    total_b = sum(t.nbytes for t in wf.tensors)
    hist: dict[str, dict] = {}
    for t in wf.tensors:
        h = hist.setdefault(t.dtype, {"tensors": 0, "elements": 0, "bytes": 0})
        h["tensors"] += 1
        h["elements"] += t.elements
        h["bytes"] += t.nbytes
    for h in hist.values():
        h["bits_per_weight"] = round(8 * h["bytes"] / max(1, h["elements"]), 3)
        h["share_of_weights"] = round(h["elements"] / max(1, total_el), 4)
    # the bulk type: the one holding most weights among matrices; anything above it was kept higher
    matrices = [t for t in wf.tensors if len(t.shape) >= 2 and t.elements > 1024]
    bulk_counter = collections.Counter()
    for t in matrices:
        bulk_counter[t.dtype] += t.elements
    bulk = bulk_counter.most_common(1)[0][0] if bulk_counter else None
    bulk_bpw = hist[bulk]["bits_per_weight"] if bulk else 0.0
    groups: dict[str, dict] = {}
    for t in wf.tensors:
        g = groups.setdefault(layer_type(t.name), {"tensors": 0, "types": collections.Counter(), "elements": 0, "bytes": 0})
        g["tensors"] += 1
        g["types"][t.dtype] += 1
        g["elements"] += t.elements
        g["bytes"] += t.nbytes
    # compare matrices only: norms, biases and pad tokens stay F32 in every recipe
    mat_groups: dict[str, list[int]] = {}
    for t in matrices:
        g = mat_groups.setdefault(layer_type(t.name), [0, 0])
        g[0] += t.elements
        g[1] += t.nbytes
    higher = sorted(name for name, (n, b) in mat_groups.items() if 8 * b / n > bulk_bpw + 1e-6)
    layer_types = {
        name: {"tensors": g["tensors"], "types": dict(g["types"]), "elements": g["elements"],
               "bits_per_weight": round(8 * g["bytes"] / max(1, g["elements"]), 3)}
        for name, g in sorted(groups.items())
    }
    result = {
        "file": str(wf.path),
        "format": wf.format,
        "architecture": wf.architecture,
        "tensors": len(wf.tensors),
        "weights": total_el,
        "tensor_bytes": total_b,
        "file_bytes": wf.file_bytes,
        "bits_per_weight": round(8 * total_b / max(1, total_el), 3),
        "types": dict(sorted(hist.items(), key=lambda kv: -kv[1]["elements"])),
        "bulk_type": bulk,
        "kept_higher_precision": [
            {"layer_type": n, "types": layer_types[n]["types"], "bits_per_weight": layer_types[n]["bits_per_weight"]}
            for n in higher
        ],
        "layer_types": layer_types,
        "per_tensor": [dict(dataclasses.asdict(t), bits_per_weight=round(t.bits_per_weight, 3)) for t in wf.tensors],
    }
    if against is not None:
        result["against"] = compare(wf, open_weights(against))
    return result


def compare(wf: WeightsFile, ref: WeightsFile) -> dict:
    """Relative L2 error ||deq - ref|| / ||ref|| of every tensor, summarised by layer type."""
    reference = _reference_loader(ref)
    per_tensor, missing = {}, []
    for t in wf.tensors:
        r = reference(t.name)
        if r is None:
            missing.append(t.name)
            continue
        q = wf.load(t.name)
        if r.size != q.size:
            raise CorruptWeights(f"{t.name}: {q.shape} in {wf.path.name} but {r.shape} in {ref.path.name}: "
                                 "not the same model")
        r = r.reshape(q.shape).astype(np.float32)
        denom = float(np.linalg.norm(r))
        per_tensor[t.name] = (float(np.linalg.norm(q - r)) / denom if denom else float(np.abs(q).max(initial=0.0)),
                              t.dtype, t.elements)
    by_type: dict[str, dict] = {}
    for name, (err, dtype, n) in per_tensor.items():
        g = by_type.setdefault(layer_type(name), {"tensors": 0, "types": collections.Counter(), "errors": [], "w": []})
        g["tensors"] += 1
        g["types"][dtype] += 1
        g["errors"].append(err)
        g["w"].append(n)
    summary = {
        name: {"tensors": g["tensors"], "types": dict(g["types"]),
               "mean_rel_error": float(np.average(g["errors"], weights=g["w"])), "max_rel_error": max(g["errors"])}
        for name, g in sorted(by_type.items())
    }
    all_err = [e for e, _, _ in per_tensor.values()]
    weights = [n for _, _, n in per_tensor.values()]
    return {
        "reference": str(ref.path),
        "compared": len(per_tensor),
        "missing_in_reference": missing,
        "mean_rel_error": float(np.average(all_err, weights=weights)) if all_err else None,
        "max_rel_error": max(all_err) if all_err else None,
        "by_layer_type": summary,
        "per_tensor": {k: v[0] for k, v in per_tensor.items()},
    }


def render(result: dict, all_tensors: bool = False) -> str:
    gb = 1e9
    lines = [
        f"{result['file']}",
        f"  format {result['format']}, architecture {result['architecture']!s}, {result['tensors']} tensors, "
        f"{result['weights']:,} weights",
        f"  {result['tensor_bytes']:,} tensor bytes ({result['tensor_bytes'] / gb:.3f} GB; file "
        f"{result['file_bytes']:,} bytes), {result['bits_per_weight']:.2f} bits per weight",
        "",
        f"  {'type':<8} {'tensors':>8} {'weights':>16} {'share':>7} {'bits/weight':>12}",
    ]
    for name, h in result["types"].items():
        lines.append(f"  {name:<8} {h['tensors']:>8} {h['elements']:>16,} {h['share_of_weights']:>7.1%} "
                     f"{h['bits_per_weight']:>12.3f}")
    if result["bulk_type"]:
        lines += ["", f"  bulk type {result['bulk_type']}; layer types kept at higher precision:"]
        kept = result["kept_higher_precision"]
        lines += [f"    {k['layer_type']:<52} {', '.join(k['types'])} ({k['bits_per_weight']:.2f} bits/weight)" for k in kept]
        if not kept:
            lines.append("    none: every large tensor has the bulk type")
    if all_tensors:
        lines += ["", "  tensors:"]
        lines += [f"    {t['name']:<52} {t['dtype']:<6} {str(t['shape']):<16} {t['bits_per_weight']:.2f}"
                  for t in result["per_tensor"]]
    cmp = result.get("against")
    if cmp:
        lines += ["", f"  relative error against {cmp['reference']} ({cmp['compared']} tensors; "
                      f"weighted mean {cmp['mean_rel_error']:.4g}, max {cmp['max_rel_error']:.4g}):",
                  f"    {'layer type':<52} {'types':<16} {'mean':>9} {'max':>9}"]
        exact = [n for n, g in cmp["by_layer_type"].items() if g["max_rel_error"] == 0]
        for name, g in cmp["by_layer_type"].items():
            if name in exact:
                continue
            lines.append(f"    {name:<52} {','.join(g['types']):<16} {g['mean_rel_error']:>9.4g} {g['max_rel_error']:>9.4g}")
        if exact:
            lines.append(f"    + {len(exact)} layer types stored exactly ({', '.join(sorted({t for n in exact for t in cmp['by_layer_type'][n]['types']}))})")
        if cmp["missing_in_reference"]:
            lines.append(f"  not in the reference: {', '.join(cmp['missing_in_reference'][:8])}"
                         + (" …" if len(cmp["missing_in_reference"]) > 8 else ""))
    return "\n".join(lines)
