"""Numpy quantizers for the GGUF K-quants Q2_K, Q4_K and Q6_K.

Written by hand because the `gguf` package only dequantizes K-quants (`gguf.quants.quantize`
raises NotImplementedError for them) and diffusers has no writer; we need them to write tiny
stand-ins for unsloth's Q2_K / Q4_K_M files. The byte layout is ggml's (`block_q2_K`, `block_q4_K`,
`block_q6_K` in ggml-common.h), mirrored from gguf-py's dequantizers, so that
`gguf.quants.dequantize` and diffusers' GGUF loader read the values back. The scale search is a
plain min/max per sub-block, not llama.cpp's iterative optimiser: a little more error, same format.

A super-block holds QK_K = 256 weights of one row, so a row whose length is not a multiple of 256
cannot be K-quantized; `fallback_type` names the 32-block type llama.cpp uses instead.
"""

from __future__ import annotations

import numpy as np

QK_K = 256
TYPES = ("Q2_K", "Q4_K", "Q6_K")
# llama.cpp (llama-quant.cpp, "fallback" for rows not divisible by QK_K): the next 32-block type
# with at least as many bits
FALLBACK = {"Q2_K": "Q4_0", "Q4_K": "Q5_0", "Q6_K": "Q8_0"}


def fallback_type(qtype: str, row_length: int) -> str:
    """The type a row of `row_length` weights actually gets when `qtype` is asked for."""
    if qtype in TYPES and row_length % QK_K:
        return FALLBACK[qtype]
    return qtype


def _f16(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float16)


def _blocks(array: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    array = np.asarray(array, dtype=np.float32)
    if array.shape[-1] % QK_K:
        raise ValueError(f"K-quants need rows that are a multiple of {QK_K} long, got {array.shape[-1]}")
    return array.reshape(-1, QK_K), array.shape


def _byte_shape(shape: tuple[int, ...], type_size: int) -> tuple[int, ...]:
    return (*shape[:-1], shape[-1] // QK_K * type_size)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=np.float32), where=b != 0)


def _scale_min(x: np.ndarray, nsub: int, qmax: int, smax: int):
    """Affine sub-block quantization x ~ d*sc*q - dmin*m with q in 0..qmax, sc and m in 0..smax.

    Returns (d f16, dmin f16, sc, m, q) with sc, m, q as uint8.
    """
    n = x.shape[0]
    sub = x.reshape(n, nsub, -1)
    lo = np.minimum(sub.min(axis=-1), 0.0)  # ggml keeps the offset <= 0 (m is stored unsigned)
    scale = (sub.max(axis=-1) - lo) / qmax
    d = _f16(scale.max(axis=-1) / smax)
    dmin = _f16((-lo).max(axis=-1) / smax)
    df, dminf = d.astype(np.float32)[:, None], dmin.astype(np.float32)[:, None]
    sc = np.clip(np.rint(_safe_div(scale, df)), 0, smax)
    m = np.clip(np.rint(_safe_div(-lo, dminf)), 0, smax)
    step = (df * sc)[..., None]
    q = np.clip(np.rint(_safe_div(sub + (dminf * m)[..., None], step)), 0, qmax)
    return d, dmin, sc.astype(np.uint8), m.astype(np.uint8), q.astype(np.uint8)


def quantize_q4_k(array: np.ndarray) -> np.ndarray:
    """Q4_K: 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes; 144 bytes per 256 weights."""
    x, shape = _blocks(array)
    d, dmin, sc, m, q = _scale_min(x, 8, 15, 63)
    n = x.shape[0]
    packed = np.empty((n, 12), np.uint8)
    # bytes 0-3: sc[0:4] | top 2 bits of sc[4:8]; 4-7: m[0:4] | top of m[4:8]; 8-11: low nibbles of both
    packed[:, 0:4] = sc[:, :4] | ((sc[:, 4:] >> 4) << 6)
    packed[:, 4:8] = m[:, :4] | ((m[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    # 32-byte chunk i: sub-block 2i in the low nibbles, 2i+1 in the high nibbles
    q = q.reshape(n, 4, 2, 32)
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(n, 128)
    out = np.concatenate([d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2), packed, qs], axis=1)
    return out.reshape(_byte_shape(shape, 144))


def quantize_q2_k(array: np.ndarray) -> np.ndarray:
    """Q2_K: 16 sub-blocks of 16, 4-bit scale and min per sub-block; 84 bytes per 256 weights."""
    x, shape = _blocks(array)
    d, dmin, sc, m, q = _scale_min(x, 16, 3, 15)
    n = x.shape[0]
    scales = sc | (m << 4)
    # weights h*128 + s*32 + b sit in byte h*32 + b at bit 2s
    q = q.reshape(n, 2, 4, 32)
    qs = (q[:, :, 0] | (q[:, :, 1] << 2) | (q[:, :, 2] << 4) | (q[:, :, 3] << 6)).reshape(n, 64)
    out = np.concatenate([scales, qs, d.view(np.uint8).reshape(n, 2), dmin.view(np.uint8).reshape(n, 2)], axis=1)
    return out.reshape(_byte_shape(shape, 84))


def quantize_q6_k(array: np.ndarray) -> np.ndarray:
    """Q6_K: 16 sub-blocks of 16, signed 8-bit scales, 6-bit symmetric weights; 210 bytes per 256."""
    x, shape = _blocks(array)
    n = x.shape[0]
    sub = x.reshape(n, 16, 16)
    scale = np.abs(sub).max(axis=-1) / 31
    d = _f16(scale.max(axis=-1) / 127)
    df = d.astype(np.float32)[:, None]
    sc = np.clip(np.rint(_safe_div(scale, df)), 0, 127)
    step = (df * sc)[..., None]
    q = (np.clip(np.rint(_safe_div(sub, step)), -32, 31) + 32).astype(np.uint8).reshape(n, 2, 2, 64)
    lo, hi = q & 0x0F, q >> 4
    ql = (lo[:, :, 0] | (lo[:, :, 1] << 4)).reshape(n, 128)  # weight h*128 + t*64 + c: byte h*64 + c, nibble t
    hi = hi.reshape(n, 2, 4, 32)  # weight h*128 + s*32 + b: byte h*32 + b, bits 2s
    qh = (hi[:, :, 0] | (hi[:, :, 1] << 2) | (hi[:, :, 2] << 4) | (hi[:, :, 3] << 6)).reshape(n, 64)
    out = np.concatenate([ql, qh, sc.astype(np.int8).view(np.uint8), d.view(np.uint8).reshape(n, 2)], axis=1)
    return out.reshape(_byte_shape(shape, 210))


QUANTIZERS = {"Q2_K": quantize_q2_k, "Q4_K": quantize_q4_k, "Q6_K": quantize_q6_k}


def quantize(array: np.ndarray, qtype: str) -> np.ndarray:
    """Quantize a float array (rows a multiple of 256 long) to the raw bytes of a K-quant type."""
    try:
        fn = QUANTIZERS[qtype]
    except KeyError:
        raise ValueError(f"no K-quant writer for {qtype!r}; choose one of {TYPES}") from None
    return fn(array)
