"""GGUF transformer files: load them through diffusers, check them, and write them.

The unsloth Z-Image-Turbo GGUF files keep the original Z-Image key names (fused
`attention.qkv`, `attention.out`, `q_norm`/`k_norm`, `x_embedder.*`, `final_layer.*`) under the
architecture tag `lumina2`; diffusers' single-file loader renames them. `write_gguf` lays out any
ZImageTransformer2DModel state dict the same way, so the real loading path runs in tests on a
tiny model (the gguf package writes; diffusers has no writer).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import CorruptWeights, WeightsNotFound

ARCHITECTURE = "lumina2"
# diffusers name fragment -> original (file) name fragment; the inverse of diffusers'
# convert_z_image_transformer_checkpoint_to_diffusers
_TO_FILE_NAMES = {
    "all_final_layer.2-1.": "final_layer.",
    "all_x_embedder.2-1.": "x_embedder.",
    ".attention.to_out.0.": ".attention.out.",
    ".attention.norm_k.": ".attention.k_norm.",
    ".attention.norm_q.": ".attention.q_norm.",
}
QUANT_TYPES = ("Q8_0", "Q6_K", "Q5_0", "Q4_K", "Q4_0", "Q2_K", "BF16", "F16", "F32")


def to_file_layout(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers state dict -> original Z-Image names with q, k, v fused into one qkv matrix."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if ".attention.to_k." in key or ".attention.to_v." in key:
            continue
        if ".attention.to_q.weight" in key:
            base = key[: -len(".attention.to_q.weight")]
            value = torch.cat([state_dict[f"{base}.attention.to_{n}.weight"] for n in "qkv"])
            key = f"{base}.attention.qkv.weight"
        for new, old in _TO_FILE_NAMES.items():
            key = key.replace(new, old)
        out[key] = value
    return out


def write_gguf(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, quant: str = "Q8_0") -> Path:
    """Write a transformer state dict as a GGUF file in the unsloth layout.

    Matrices whose rows fill whole quant blocks get `quant`; 1-D tensors (norms, biases) and the
    pad tokens stay F32, as in the published files. A K-quant (rows of 256) falls back to
    llama.cpp's 32-block type for shorter rows (kquants.FALLBACK).
    """
    import gguf

    from . import kquants

    if quant not in QUANT_TYPES:
        raise ValueError(f"quant must be one of {QUANT_TYPES}, got {quant!r}")
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    writer = gguf.GGUFWriter(str(tmp), ARCHITECTURE)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    for key, value in to_file_layout(state_dict).items():
        array = value.detach().float().cpu().numpy()
        name = kquants.fallback_type(quant, array.shape[-1])
        qtype = gguf.GGMLQuantizationType[name]
        block = gguf.GGML_QUANT_SIZES[qtype][0]
        if array.ndim >= 2 and array.shape[-1] % block == 0 and "pad_token" not in key and quant != "F32":
            if name in kquants.TYPES:
                q = kquants.quantize(array, name)
            else:
                q = gguf.quants.quantize(array, qtype)
            writer.add_tensor(key, q, raw_shape=q.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(key, array.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path


def check_gguf(path: str | os.PathLike) -> None:
    """Raise a clear error for a missing, foreign or truncated GGUF file (cheap: header + sizes)."""
    import gguf

    path = Path(path)
    if not path.is_file():
        raise WeightsNotFound(f"GGUF file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise CorruptWeights(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    try:
        reader = gguf.GGUFReader(str(path))
    except Exception as exc:  # the reader raises assorted errors on cut files
        raise CorruptWeights(
            f"{path} cannot be read as GGUF ({type(exc).__name__}: {exc}); it is probably truncated "
            "(an interrupted download?): delete it and download it again"
        ) from None
    end = max((int(t.data_offset) + int(t.n_bytes) for t in reader.tensors), default=0)
    if end > path.stat().st_size:
        raise CorruptWeights(f"{path} is truncated: its tensors need {end} bytes, the file has {path.stat().st_size}")
    arch = reader.get_field("general.architecture")
    if arch is not None:
        name = bytes(arch.parts[arch.data[0]]).decode(errors="replace")
        if name != ARCHITECTURE:
            raise CorruptWeights(f"{path} is a GGUF of architecture {name!r}, not a Z-Image transformer ({ARCHITECTURE!r})")


def load_transformer(path: str | os.PathLike, config: str, subfolder: str | None, dtype: torch.dtype,
                     local_files_only: bool = False):
    """ZImageTransformer2DModel from a GGUF file, dequantised on the fly by diffusers (the article's recipe).

    `config` is the hub repo or local folder whose transformer config describes the file: diffusers
    would otherwise guess Lumina2 from the `lumina2` tag.
    """
    from diffusers import GGUFQuantizationConfig, ZImageTransformer2DModel

    check_gguf(path)
    try:
        return ZImageTransformer2DModel.from_single_file(
            str(path), config=config, subfolder=subfolder,
            quantization_config=GGUFQuantizationConfig(compute_dtype=dtype), dtype=dtype,
            local_files_only=local_files_only,
        )
    except (KeyError, ValueError, RuntimeError) as exc:
        raise CorruptWeights(
            f"{path} does not hold a Z-Image transformer matching the config from {config} "
            f"({type(exc).__name__}: {str(exc)[:300]})"
        ) from None
