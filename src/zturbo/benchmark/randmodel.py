"""Benchmark fixtures: a random-weight pipeline of the REAL Z-Image-Turbo architecture, and a fast Q8_0 writer.

Speed does not depend on weight values, so random weights time exactly like the released checkpoint
(same shapes, same kernels). The tokenizer is the tiny model's offline BPE: only the text encoder's token count
depends on it, and that is recorded with every benchmark.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..models import published

TRANSFORMER_CONFIG = published.TRANSFORMER
TEXT_ENCODER_CONFIG = published.TEXT_ENCODER
VAE_CONFIG = published.VAE


def transformer_from_state(state: dict, config: dict, device) -> torch.nn.Module:
    """A transformer holding `state` (e.g. a CPU copy), built without a random init."""
    from diffusers import ZImageTransformer2DModel

    with torch.device("meta"):
        model = ZImageTransformer2DModel.from_config(config)
    model.load_state_dict(state, assign=True)
    return model.to(device).eval()


def build_transformer(device, tiny: bool = False, seed: int = 0) -> torch.nn.Module:
    from diffusers import ZImageTransformer2DModel

    from ..models import tiny as tiny_model

    torch.manual_seed(seed)
    with torch.device(device):
        model = ZImageTransformer2DModel(**(tiny_model.TRANSFORMER_CONFIG if tiny else TRANSFORMER_CONFIG))
        model = model.to(torch.bfloat16)
        for p in model.parameters():
            p.data.mul_(0.5)  # keeps random activations in a sane range over 34 blocks
    return model.eval()


def build_pipeline(device, tiny: bool = False, with_text_encoder: bool = True):
    """ZImagePipeline at bf16 on `device`: the real architecture, or the tiny one (smoke runs)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline
    from transformers import Qwen3Config, Qwen3Model

    from ..models import tiny as tiny_model

    tokenizer = tiny_model.build_tokenizer()
    te_cfg = dict(tiny_model.TEXT_ENCODER_CONFIG, vocab_size=len(tokenizer)) if tiny else TEXT_ENCODER_CONFIG
    with torch.device(device):
        te = Qwen3Model(Qwen3Config(**te_cfg)).to(torch.bfloat16).eval() if with_text_encoder else None
        vae = AutoencoderKL(**(tiny_model.VAE_CONFIG if tiny else VAE_CONFIG)).to(torch.bfloat16).eval()
    return ZImagePipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**published.SCHEDULER), vae=vae, text_encoder=te,
        tokenizer=tokenizer, transformer=build_transformer(device, tiny),
    )


def quantize_q8_0(weight: torch.Tensor) -> np.ndarray:
    """GGUF Q8_0 blocks of a (rows, cols) matrix, on whatever device it lives (fast on a GPU).

    Byte-for-byte gguf.quants.quantize (scale = max|x|/127 in fp16, gguf's np_roundf: half away from
    zero via floor(2 * frac), which floor(|x| + 0.5) misses at x = 0.5 - ulp); the gguf package's
    numpy version takes ~70 s for the 6 B transformer.
    """
    rows, cols = weight.shape
    x = weight.float().reshape(-1, 32)
    d = x.abs().amax(dim=1, keepdim=True) / 127
    inv = torch.where(d == 0, torch.zeros_like(d), 1 / d)
    v = x * inv
    a = v.abs()
    f = torch.floor(a)
    q = (torch.sign(v) * (f + torch.floor(2 * (a - f)))).to(torch.int8)
    blocks = torch.cat([d.to(torch.float16).view(torch.uint8), q.view(torch.uint8)], dim=1)
    return blocks.reshape(rows, cols // 32 * 34).cpu().numpy()


def write_q8_gguf(state_dict: dict[str, torch.Tensor], path: str | os.PathLike, device=None) -> Path:
    """Like zturbo.models.gguf.write_gguf(..., "Q8_0"), with the quantisation done in torch (on `device`
    when given, else where each tensor lives)."""
    import gguf

    from ..models.gguf import ARCHITECTURE, to_file_layout

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), ARCHITECTURE)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    qtype = gguf.GGMLQuantizationType.Q8_0
    for key, value in to_file_layout(state_dict).items():
        if value.ndim == 2 and value.shape[-1] % 32 == 0 and "pad_token" not in key:
            q = quantize_q8_0(value if device is None else value.to(device))
            writer.add_tensor(key, q, raw_shape=q.shape, raw_dtype=qtype)
        else:
            writer.add_tensor(key, value.detach().float().cpu().numpy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
