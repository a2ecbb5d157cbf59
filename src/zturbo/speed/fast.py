"""apply_fast(pipe): turn on what this GPU supports, and say what was turned on and why not the rest.

Everything here is a library call: diffusers' regional compile (`compile_repeated_blocks`) and
attention backends, torch.compile for the VAE decoder, torchao float8, torch's on-disk compile cache.
"""

from __future__ import annotations

import dataclasses
import os

import torch

from .. import defaults
from ..paths import compile_cache_dir
from . import fp8 as fp8_mod
from .fused import CONTROL_BLOCK_LISTS, blocks_of, compile_control_blocks, rewrite_blocks, rewrite_control_blocks
from .graphs import install as install_graphs
from .gguf_mode import _fp8_why_not, convert_gguf, is_gguf, resolve_gguf_mode


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    on: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {'on' if self.on else 'off'} ({self.detail})"


def speed_lines(features) -> list[str]:
    """One line per feature, except that features off for the same reason share one line (on a CPU all the
    GPU ones are off for one reason, which would otherwise print six times)."""
    rows: list[tuple[list[str], str]] = []  # (names, text), in first-seen order
    shared: dict[str, list[str]] = {}
    for f in features:
        if f.on:
            rows.append(([f.name], f"on ({f.detail})"))
        elif f.detail in shared:
            shared[f.detail].append(f.name)
        else:
            shared[f.detail] = [f.name]
            rows.append((shared[f.detail], f"off ({f.detail})"))
    return [f"{', '.join(names)}: {text}" for names, text in rows]


def _device(pipe) -> torch.device:
    return next(pipe.transformer.parameters()).device


def pick_attention_backend(device: torch.device, backends=defaults.ATTENTION_BACKENDS) -> tuple[str, str]:
    """The first backend in `backends` whose package is installed and that runs a tiny probe here."""
    from diffusers.models.attention_dispatch import (
        AttentionBackendName,
        _check_attention_backend_requirements,
        dispatch_attention_fn,
    )

    skipped = []
    for name in backends:
        if name == "native":
            break
        try:
            backend = AttentionBackendName(name)
            _check_attention_backend_requirements(backend)
            q = torch.randn(1, 64, 2, 64, device=device, dtype=torch.bfloat16)
            dispatch_attention_fn(q, q, q, backend=backend)
            # guidance > 0 batches two prompts of different lengths: the backend must take a padding mask
            mask = torch.ones(1, 1, 1, 64, dtype=torch.bool, device=device)
            mask[..., 40:] = False
            dispatch_attention_fn(q, q, q, attn_mask=mask, backend=backend)
            return name, f"{name}" + (f"; not available: {', '.join(skipped)}" if skipped else "")
        except Exception as exc:  # missing package or no kernel for this GPU: try the next one
            skipped.append(f"{name} ({type(exc).__name__})")
    return "native", "SDPA (torch's own choice of kernel)" + (f"; not available: {', '.join(skipped)}" if skipped else "")


def fp8_blocker(pipe, offload: str | None = None) -> str | None:
    """None if apply_fast's fp8 tier would put the transformer's block GEMMs in FP8 here, else why not."""
    tr = pipe.transformer
    if offload:
        return f"the transformer is offloaded (--memory {offload}); FP8 GEMMs need it resident"
    why = _fp8_why_not(_device(pipe))
    if is_gguf(tr):
        return "the transformer is a GGUF dequantised on the fly; use --gguf-mode fp8"
    if why is None and tr.dtype != torch.bfloat16:
        # torchao's float8 path and our bench numbers are for bf16 models (every published one);
        # the tiny demo model loads in float32 unless asked otherwise
        return f"the transformer is {str(tr.dtype).removeprefix('torch.')}; FP8 GEMMs are set up for bf16 weights"
    return why


def compiled(features) -> bool:
    """Did apply_fast compile the blocks (its `compile` feature is on)?"""
    return any(f.name == "compile" and f.on for f in features)


def _compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def apply_fast(pipe, tier: str | None = "lossless", gguf_mode: str | None = None, *, compile: bool = True,
               attention: bool = True, compile_vae: bool = False, rewrite: bool = True, graphs: bool = True,
               offload: str | None = None, fp8_policy=None, controlnet=None) -> list[Feature]:
    """Make `pipe` (a ZImagePipeline on its device) fast in place; returns what was turned on.

    `tier` "lossless": bf16 compute, equal to plain within bf16 rounding; "fp8": + FP8 GEMMs (lossy, chosen
    by the user); None: only `gguf_mode` acts (a GGUF transformer dequantised once at load). `offload` names
    the memory mode when the transformer is not resident on the GPU: then nothing is compiled. On a CPU
    nothing is compiled or quantised, and the report says why. `fp8_policy` (speed.fp8_policy.Fp8Policy, as
    zturbo.load calibrates it) picks which block GEMMs go to FP8; None: all of them (uncalibrated, said so).
    `controlnet` (a ZImageControlNetModel run beside the transformer): its own blocks get the same rewrite,
    attention backend and compile, and stay bf16 under the fp8 tier (the calibration measures the
    transformer's GEMMs only).

    The blocks compile with dynamic shapes: one compile serves every image size (measured on an H200 over
    the article's 24 shapes: no recompile per size, per-pass speed equal to a static compile); a batch of 2
    (guidance > 0) runs one image at a time through the same compiled blocks (speed/graphs.py), and so
    does a ControlNet beside it. The VAE decoder is not
    compiled unless asked (`compile_vae`): on the same 50 images its compile cost ~60 s to save 2.3 s
    (bench/fast_shapes_H200.json).
    """
    if tier is not None and tier not in defaults.FAST_TIERS:
        raise ValueError(f"tier must be one of {defaults.FAST_TIERS} or None, got {tier!r}")
    enabled, fp8 = tier is not None, tier == "fp8"
    tr = pipe.transformer
    device = _device(pipe)
    out: list[Feature] = []
    gguf = is_gguf(tr)
    if gguf or gguf_mode:
        mode = resolve_gguf_mode(gguf_mode, tr, tier=tier)
        out.append(Feature("gguf_mode", gguf and mode != "ondemand", f"{mode}: {convert_gguf(tr, mode)}"))
    if not enabled:
        return out
    out.append(Feature("prompt_cache", True, "prompts encoded without the 512-token padding (within bf16 rounding "
                                             "of diffusers' padded encoding), embeddings cached"))
    if offload or device.type != "cuda":
        if offload or torch.cuda.is_available():
            why = (f"the transformer is offloaded to the CPU between uses (--memory {offload or 'offload'}); --fast "
                   "needs it resident on the GPU: --memory full, or a smaller --quant")
        else:
            why = f"no CUDA GPU (the model is on {device.type}): torch.compile's GPU kernels and FP8 tensor cores need one"
        names = ("blocks", "attention", *(("fp8",) if fp8 else ()), "compile", *(("compile_vae",) if compile_vae else ()),
                 "cuda_graphs")
        return out + [Feature(n, False, why) for n in names]

    control = blocks_of(controlnet, CONTROL_BLOCK_LISTS) if controlnet is not None else []
    if rewrite:
        n = rewrite_blocks(tr)
        also = f" + the ControlNet's {rewrite_control_blocks(controlnet)} blocks" if control else ""
        out.append(Feature("blocks", True, f"real-valued RoPE that compiles into the QK-norm kernel; {n} blocks{also} "
                                           "with one QKV and one gate+up GEMM"))
    if attention:
        name, detail = pick_attention_backend(device)
        if name != "native":
            for model in (tr, controlnet) if control else (tr,):
                model.set_attention_backend(name)
        out.append(Feature("attention", True, detail))  # on: the fastest working backend was picked
    if fp8:
        why = fp8_blocker(pipe)
        already = any(type(m.weight).__name__ != "Parameter" for n, m in tr.named_modules()
                      if fp8_mod.is_fp8_linear(m, n))
        if why is None and not already:
            n = fp8_mod.quantize_fp8(tr, policy=fp8_policy)
            which = fp8_policy.summary() if fp8_policy is not None else \
                "every block GEMM, uncalibrated (no FP8 policy was given)"
            cn = "; the ControlNet's blocks bf16" if control else ""
            out.append(Feature("fp8", True, f"{n} block matrices in FP8 (torchao dynamic row-wise); embedders, "
                                            f"norms, modulation and final layer bf16{cn}; {which}"))
        else:
            placed = f"placed as FP8 while loading (--memory auto); {fp8_policy.summary()}" if fp8_policy else \
                "already FP8 (from --gguf-mode fp8)"
            out.append(Feature("fp8", already, placed if already else why))
    if compile:
        # Inductor reads its cache folder from the environment only: set it (for this process) before the
        # first compile, so that every zturbo process reuses the FX-graph and AOTAutograd caches and a second
        # one with the same shapes skips Inductor and Triton codegen (only Dynamo's trace is redone).
        cache = compile_cache_dir()
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit,
                                                   defaults.COMPILE_RECOMPILE_LIMIT)
        if not any(_compiled(m) for m in tr.modules()):
            tr.compile_repeated_blocks(fullgraph=True, dynamic=True)
        compile_control_blocks(control, fullgraph=True, dynamic=True)  # the same, for the ControlNet's blocks
        also = " and the ControlNet's" if control else ""
        out.append(Feature("compile", True, f"regional torch.compile of the transformer blocks{also} with dynamic "
                                            "shapes: the first image compiles once for every size and for guidance "
                                            f"> 0, artifacts cached in {cache}"))
    if compile_vae:
        if not _compiled(pipe.vae.decoder):
            pipe.vae.decoder.compile()
        # process-wide: every convolution from here on (the decoder's, an upscaler's) picks its fastest
        # algorithm once per shape; said in the feature line because it is global
        torch.backends.cudnn.benchmark = True
        out.append(Feature("compile_vae", True, "torch.compile of the VAE decoder; cuDNN autotuning of convolutions "
                                                "on for this process"))
    if graphs:
        install_graphs(tr, controlnet if control else None)
        cn = ("; passes fed a ControlNet's hints run the compiled blocks without a graph, and the ControlNet too "
              "runs one image of a batch at a time") if control else ""
        out.append(Feature("cuda_graphs", True, "the transformer's forward replayed as one CUDA graph per size (the "
                                                f"{defaults.CUDA_GRAPH_SHAPES} most recent kept); the plain forward if "
                                                f"the weights move or a capture fails{cn}"))
    return out
