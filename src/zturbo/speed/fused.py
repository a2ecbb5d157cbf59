"""The DiT block rewritten for the compiler: real-valued RoPE, one QKV GEMM, one gate+up GEMM.

diffusers' Z-Image attention applies RoPE by multiplying complex64 tensors. Inductor cannot generate
code for complex numbers, so inside every compiled block RoPE runs as separate eager kernels between
fused regions (float32 copies of q and k out and back). Here the RoPE tables are kept as interleaved
(cos, sin) float pairs and the rotation is plain arithmetic that fuses with the QK-norm; the same
float32 formula as torch's complex multiply, so the result equals diffusers' to float rounding.

Fusing q/k/v (diffusers' own `Attention.fuse_projections`) and w1/w3 into one matrix each makes fewer,
larger GEMMs; with FP8 row-wise scales the fused product is the same arithmetic as the separate ones.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F

from .fp8 import BLOCK_LISTS

# a Fun-Controlnet-Union ControlNet's own blocks (diffusers' ZImageControlTransformerBlock: the DiT block plus
# two zero-initialised projections); 1.0 and 2.0 have no control_noise_refiner (None)
CONTROL_BLOCK_LISTS = ("control_layers", "control_noise_refiner")


def _rope_real(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """x (B, S, H, D) rotated by freqs (B, S, D) = interleaved (cos, sin) per pair of x's channels."""
    f = freqs.unflatten(-1, (-1, 2)).unsqueeze(2)
    cos, sin = f[..., 0], f[..., 1]
    xf = x.float().unflatten(-1, (-1, 2))
    x0, x1 = xf[..., 0], xf[..., 1]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1).flatten(3).type_as(x)


def _rope_complex(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """The same rotation as diffusers computes it: one complex multiply (the real tables viewed as complex)."""
    xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    fc = torch.view_as_complex(freqs.float().reshape(*freqs.shape[:-1], -1, 2)).unsqueeze(2)
    return torch.view_as_real(xc * fc).flatten(3).type_as(x)


def _rope(x: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    # Compiled, the arithmetic fuses into the QK-norm kernel. Run eagerly (rewritten blocks outside a compile, as
    # apply_fast(compile=False) leaves them), its ~9 unfused elementwise kernels per tensor cost more than
    # diffusers' complex multiply (4): eager guidance images once ran slower than plain this way
    return _rope_real(x, freqs) if torch.compiler.is_compiling() else _rope_complex(x, freqs)


class FastZImageAttnProcessor:
    """diffusers' ZSingleStreamAttnProcessor with real-valued RoPE and the fused QKV when present."""

    _attention_backend = None
    _parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, freqs_cis=None):
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        if hasattr(attn, "to_qkv"):
            query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
        else:
            query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        query, key, value = (t.unflatten(-1, (attn.heads, -1)) for t in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if freqs_cis is not None:
            if freqs_cis.is_complex():  # a caller that bypassed real_rope_tables()
                freqs_cis = torch.view_as_real(freqs_cis).flatten(-2)
            query, key = _rope(query, freqs_cis), _rope(key, freqs_cis)
        if attention_mask is not None and attention_mask.ndim == 2:
            attention_mask = attention_mask[:, None, None, :]
        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                    backend=self._attention_backend, parallel_config=self._parallel_config)
        out = attn.to_out[0](out.flatten(2, 3).to(query.dtype))
        return attn.to_out[1](out) if len(attn.to_out) > 1 else out


def _fused_ffn_forward(self, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.w13(x).chunk(2, dim=-1)
    return self.w2(F.silu(gate) * up)


@torch.no_grad()
def fuse_block(block: torch.nn.Module) -> bool:
    """Fuse one block's q/k/v and w1/w3 in place (bf16 weights only); False if already fused or not plain."""
    attn, ff = block.attention, block.feed_forward
    if hasattr(attn, "to_qkv") or type(attn.to_q.weight) is not torch.nn.Parameter:
        return False
    attn.fuse_projections()
    attn.set_processor(FastZImageAttnProcessor())  # the stock processor reads to_q/to_k/to_v
    del attn.to_q, attn.to_k, attn.to_v  # the fused copy replaces them: no second 3 GB of weights
    w = torch.cat([ff.w1.weight, ff.w3.weight])
    ff.w13 = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, device=w.device, dtype=w.dtype)
    ff.w13.weight.copy_(w)
    del ff.w1, ff.w3
    ff.forward = types.MethodType(_fused_ffn_forward, ff)
    return True


def real_rope_tables(transformer: torch.nn.Module) -> None:
    """Give the transformer's RoPE embedder real (cos, sin) tables; the model's own code pads and concatenates
    them exactly as it did the complex ones (every op there is on the sequence dimensions)."""
    emb = transformer.rope_embedder
    tables = emb.precompute_freqs_cis(emb.axes_dims, emb.axes_lens, theta=emb.theta)
    device = next(transformer.parameters()).device
    emb.freqs_cis = [torch.view_as_real(t).flatten(-2).to(device) for t in tables]


def blocks_of(model: torch.nn.Module, lists=BLOCK_LISTS) -> list[torch.nn.Module]:
    return [block for name in lists for block in (getattr(model, name, None) or [])]


def _rewrite(blocks, fuse: bool) -> int:
    n = 0
    for block in blocks:
        if not (fuse and fuse_block(block)):
            block.attention.set_processor(FastZImageAttnProcessor())
        n += hasattr(block.attention, "to_qkv")
    return n


def rewrite_blocks(transformer: torch.nn.Module, fuse: bool = True) -> int:
    """Real RoPE in every block (+ fused projections when `fuse`); returns how many blocks are fused."""
    real_rope_tables(transformer)
    return _rewrite(blocks_of(transformer), fuse)


def _control_core(block, c, attn_mask, freqs_cis, adaln_input):
    """The DiT part of diffusers' ZImageControlTransformerBlock.forward (its modulation branch, which every
    Fun-Controlnet-Union block takes), as the stock code computes it."""
    scale_msa, gate_msa, scale_mlp, gate_mlp = block.adaLN_modulation(adaln_input).unsqueeze(1).chunk(4, dim=2)
    gate_msa, gate_mlp = gate_msa.tanh(), gate_mlp.tanh()
    scale_msa, scale_mlp = 1.0 + scale_msa, 1.0 + scale_mlp
    attn_out = block.attention(block.attention_norm1(c) * scale_msa, attention_mask=attn_mask, freqs_cis=freqs_cis)
    c = c + gate_msa * block.attention_norm2(attn_out)
    return c + gate_mlp * block.ffn_norm2(block.feed_forward(block.ffn_norm1(c) * scale_mlp))


def _control_forward(self, c, x, attn_mask, freqs_cis, adaln_input=None):
    """diffusers' ZImageControlTransformerBlock.forward with its DiT part compiled once for every block. The whole
    block cannot be: it unbinds and re-stacks the hints of the blocks before it, a list whose length Dynamo fixes,
    so each block compiled on its own (Union 2.1's first image under --fast took 88 s on an H200, against 17 s
    for text-to-image)."""
    if self.block_id == 0:
        c = self.before_proj(c) + x
        all_c = []
    else:
        all_c = list(torch.unbind(c))
        c = all_c.pop(-1)
    c = self._zturbo_core(self, c, attn_mask, freqs_cis, adaln_input)
    all_c += [self.after_proj(c), c]
    return torch.stack(all_c)


def compile_control_blocks(blocks, **options) -> int:
    """torch.compile the DiT part of each ControlNet block (one compiled function for all: the same code on the
    same shapes); returns how many blocks now run it. Blocks without modulation are left as they are."""
    core = torch.compile(_control_core, **options)
    n = 0
    for block in blocks:
        if getattr(block, "modulation", False):
            block._zturbo_core = core
            block.forward = types.MethodType(_control_forward, block)
            n += 1
    return n


def rewrite_control_blocks(controlnet: torch.nn.Module, fuse: bool = True) -> int:
    """The same rewrite for a ControlNet's own blocks. Required, not optional, once the transformer is rewritten:
    the ControlNet shares the transformer's RoPE embedder (from_transformer), whose tables are real from then on,
    and diffusers' stock processor in its blocks reads them as complex. Returns how many blocks are fused."""
    return _rewrite(blocks_of(controlnet, CONTROL_BLOCK_LISTS), fuse)
