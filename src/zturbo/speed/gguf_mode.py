"""--gguf-mode: dequantise a GGUF transformer once at load instead of inside every forward.

diffusers' GGUF loader keeps GGUFParameters and dequantises every block on every pass (the article's
recipe: 1.24x slower than bf16 on an H200). Here diffusers' own `_dequantize_gguf_and_restore_linear`
turns them into plain nn.Linear weights once; for fp8 it does so block by block, each block going to
FP8 right away, so the peak stays near the GGUF file's size instead of the 12.3 GB of bf16.
"""

from __future__ import annotations

import torch

from .. import defaults
from ..errors import InvalidParams
from . import fp8
from .fused import fuse_block


def is_gguf(transformer: torch.nn.Module) -> bool:
    return any(hasattr(p, "quant_type") for p in transformer.parameters())


def _bf16_bytes(transformer: torch.nn.Module) -> int:
    """Bytes the transformer would take dequantised to bf16."""
    n = 0
    for p in transformer.parameters():
        shape = getattr(p, "quant_shape", p.shape)
        n += 2 * int(torch.Size(shape).numel())
    return n


def resolve_gguf_mode(mode: str | None, transformer: torch.nn.Module, tier: str | None) -> str:
    """The mode to use: an explicit one, else auto under --fast, else ondemand (stock behaviour). Auto picks
    fp8 only in the fp8 tier (--fp8: a lossy trade the user chose); the lossless tier keeps the file's values."""
    mode = mode or ("auto" if tier else "ondemand")
    if mode not in defaults.GGUF_MODES:
        raise InvalidParams(f"gguf mode must be one of {', '.join(defaults.GGUF_MODES)}, got {mode!r}")
    device = next(transformer.parameters()).device
    if mode == "fp8" and not _fp8_ok(device):
        raise InvalidParams(f"--gguf-mode fp8 needs FP8 tensor cores (sm_89+) and torchao: {_fp8_why_not(device)}; "
                            "use --gguf-mode bf16 or ondemand")
    if mode != "auto":
        return mode
    if tier == "fp8" and _fp8_ok(device):
        return "fp8"
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return "bf16" if free > _bf16_bytes(transformer) + defaults.GGUF_BF16_HEADROOM_GB * 1e9 else "ondemand"
    return "bf16"  # CPU: RAM is the limit, and on-the-fly dequantisation is slowest there


def _fp8_why_not(device: torch.device) -> str | None:
    if device.type != "cuda":
        return f"the transformer is on {device.type}, not a CUDA GPU"
    cap = torch.cuda.get_device_capability(device)
    if cap < defaults.FP8_MIN_CAPABILITY:
        return f"{torch.cuda.get_device_name(device)} is sm_{cap[0]}{cap[1]}, FP8 tensor cores start at sm_89"
    return fp8.torchao_available()


def _fp8_ok(device: torch.device) -> bool:
    return _fp8_why_not(device) is None


def convert_gguf(transformer: torch.nn.Module, mode: str) -> str:
    """Dequantise `transformer`'s GGUF weights in place into `mode` (bf16 or fp8); returns what was done."""
    from diffusers.quantizers.gguf.utils import _dequantize_gguf_and_restore_linear

    if mode == "ondemand" or not is_gguf(transformer):
        return "GGUF weights dequantised on the fly in every forward (diffusers)" if mode == "ondemand" else "not a GGUF transformer"
    n_fp8 = 0
    if mode == "fp8":
        for name in fp8.BLOCK_LISTS:
            for i, block in enumerate(getattr(transformer, name, [])):
                _dequantize_gguf_and_restore_linear(block)
                fuse_block(block)  # one QKV and one gate+up matrix, quantised as such
                n_fp8 += fp8.quantize_fp8(block, prefix=f"{name}.{i}.")
    _dequantize_gguf_and_restore_linear(transformer)  # the rest (embedders, final layer) -> bf16
    # what diffusers' ModelMixin.dequantize() does after dequantising: the model is plain again
    if hasattr(transformer, "hf_quantizer"):
        del transformer.hf_quantizer
    transformer.is_quantized = False
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    if mode == "fp8":
        return f"GGUF dequantised once at load: {n_fp8} block matrices to FP8 (torchao row-wise), the rest bf16"
    dtype = str(next(transformer.parameters()).dtype).removeprefix("torch.")
    return f"GGUF dequantised once at load into {dtype} weights"
