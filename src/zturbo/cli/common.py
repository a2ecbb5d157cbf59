"""Options and helpers shared by the subcommands that load a model."""

from __future__ import annotations

import argparse
import os
import sys

from .. import defaults


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None,
                   help=f"hub id, local diffusers folder, or '{defaults.TINY_MODEL}' (offline random-weight "
                        f"demo model: noise by design). Default {defaults.MODEL_ID}")
    g.add_argument("--quant", choices=defaults.QUANTS, default=None,
                   help="transformer precision: bf16, or a GGUF from "
                        f"{defaults.GGUF_REPO}: q8 = Q8_0, q4 = Q4_K_M, q2 = Q2_K. Default: bf16, or with --memory auto a Q8/Q4 file already on disk when bf16 would not fit resident")
    g.add_argument("--gguf", metavar="PATH", default=None, help="a local GGUF transformer file (overrides --quant)")
    g.add_argument("--device", default=None, help="torch device: cuda, cuda:1, cpu. Default: the GPU if there is one")
    g.add_argument("--memory", choices=defaults.MEMORY_CHOICES, default="auto",
                   help="GPU memory: auto (default) picks precision and offload from free memory and says why; "
                        "full = all on the GPU; model-offload = one model at a time; group-offload = blocks "
                        "streamed from CPU memory (~2.4 GB at 1 MP, measured); sequential = layer by layer (slowest). "
                        "Out of memory retries once one step lower")
    g.add_argument("--vram-budget", type=float, default=None, metavar="GB",
                   help="use at most this much GPU memory (GB = 1e9 bytes), e.g. to share the card; "
                        "auto plans within it and torch's allocator is capped to it")
    g.add_argument("--fast", action="store_true",
                   help="lossless speed-ups, said one by one: blocks with fused QKV / gate+up GEMMs and real RoPE, "
                        "regional torch.compile with dynamic shapes (the first image compiles once for every size; "
                        "cached across runs), the fastest attention backend, one CUDA graph per size, prompts "
                        "without padding. bf16 throughout: equal to plain within bf16 rounding. Off when --memory "
                        "offloads the transformer")
    g.add_argument("--fp8", action="store_true",
                   help="--fast plus FP8 GEMMs on sm_89+ (torchao): faster, but LOSSY: the images change. A trade "
                        "you choose. Calibrated: one bf16 generation on your weights (cached by their hash) measures "
                        "each block GEMM's FP8 error; the most sensitive stay bf16 (see --fp8-budget). zturbo bench "
                        "--quality measures the images' PSNR/SSIM against bf16")
    g.add_argument("--fp8-budget", metavar="B|all", type=fp8_budget_arg, default=None,
                   help=f"with --fp8: the mean relative FP8 output error allowed over the block GEMMs (a GEMM kept "
                        f"bf16 counts 0); default {defaults.FP8_BUDGET:g} = {defaults.FP8_BUDGET * 100:g}%%. Smaller keeps "
                        f"more in bf16 (closer to bf16, slower); 'all' = every block GEMM FP8, uncalibrated")
    g.add_argument("--gguf-mode", choices=defaults.GGUF_MODES, default=None,
                   help="GGUF transformer: ondemand = dequantise in every forward (stock diffusers), bf16 / fp8 = "
                        "dequantise once at load (fp8: about the file's memory at FP8 speed, lossy). Default: auto "
                        "with --fast (bf16 if it fits, else ondemand; with --fp8: fp8 on sm_89+), else ondemand")
    g.add_argument("--lora", metavar="FILE[:SCALE]", action="append", type=_lora_arg, default=None,
                   help="a LoRA .safetensors file and its scale (default 1.0), e.g. style.safetensors:0.8; repeat "
                        "for several. Layouts of diffusers/peft, kohya, ComfyUI, DiffSynth and ai-toolkit load; "
                        "merged into the weights at load (free per pass; a new scale means a new load). Pickled "
                        ".pt/.ckpt files are refused")
    g.add_argument("--unfused-loras", action="store_true",
                   help="keep the --lora files as adapters beside the weights instead of merging them: each pass "
                        "adds their matmuls, and the pixels are those of serve --lora-dir's per-request LoRAs "
                        "(a merge rounds the weights otherwise). Not with --fast")
    g.add_argument("--controlnet", metavar="FILE", default=None,
                   help="a Fun-Controlnet-Union .safetensors file (alibaba-pai/Z-Image-Turbo-Fun-Controlnet-Union "
                        "1.0, 2.0 or 2.1; which one is read from the file), steered by --control IMG; "
                        f"'{defaults.TINY_MODEL}' with --model tiny. Pickled files are refused")


def fp8_budget_arg(value: str):
    from ..errors import InvalidParams
    from ..loading import parse_fp8_budget

    try:
        return parse_fp8_budget(value)
    except InvalidParams as exc:  # argparse names the option itself
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--fp8-budget ")) from None


def _lora_arg(value: str) -> tuple[str, float]:
    """argparse type for --lora: a bad scale is a one-line usage error naming the file."""
    from ..errors import InvalidParams
    from ..lora import parse_arg

    try:
        return parse_arg(value)
    except InvalidParams as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def load_options(args: argparse.Namespace, **changes):
    """The LoadOptions a command's model arguments (add_model_arguments) describe, with `changes` on top."""
    from ..loading import LoadOptions

    fields = dict(model=args.model, quant=args.quant, gguf=args.gguf, device=args.device, memory=args.memory,
                  vram_budget_gb=args.vram_budget, fast="fp8" if args.fp8 else "lossless" if args.fast else None,
                  gguf_mode=args.gguf_mode, loras=tuple(args.lora or ()), fp8_budget=getattr(args, "fp8_budget", None),
                  controlnet=args.controlnet, fuse_loras=not args.unfused_loras)
    return LoadOptions(**{**fields, **changes})


def load_engine(options, quiet: bool = False):
    """load(options), saying what is loading and what memory auto and --fast chose."""
    from ..loading import load
    from ..speed.fast import speed_lines

    say(f"loading {options.describe()} ...", quiet)
    engine = load(options)
    if engine.memory is not None:
        say(f"memory: {engine.memory.plan.reason}", quiet)
    for line in speed_lines(engine.speed):
        say(f"fast: {line}", quiet)
    if engine.info.is_tiny:
        say(f"note: {engine.info.label}", quiet)
    return engine


def warm_up(engine, sizes: list[tuple[int, int]], quiet: bool = False) -> float | None:
    """Pay the first call's costs before the first user does. With --fast: one short generation per size (a
    guidance > 0 batch runs one image at a time through the same compiled blocks); the blocks compile with
    dynamic shapes, so other sizes then only capture their CUDA graph (a few passes). Plain, on a GPU: one
    1-pass generation at the first size (CUDA context, cuBLAS/cuDNN set-up, the allocator's first blocks:
    plain serve's first request took 3.3 s against 1.4 s for the next on an H200 before it warmed up, 1.77 s
    after, bench/serve_H200.json). None when there is nothing to pay."""
    import tempfile
    import time

    from PIL import Image

    from ..params import GenerationParams

    compiled = any(f.name == "compile" and f.on for f in engine.speed)
    device = getattr(engine, "device", None)
    if not sizes or not (compiled or getattr(device, "type", None) == "cuda"):
        return None
    controlnet = getattr(engine, "controlnet", None) is not None
    names = ", ".join(f"{w}x{h}" for w, h in (sizes if compiled else sizes[:1]))
    say(f"warming up --fast at {names}: compiles once, cached for the next start ..." if compiled
        else f"warming up at {names} (the GPU's first-call set-up) ...", quiet)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="zturbo-warm-up-") as tmp:
        for w, h in sizes if compiled else sizes[:1]:
            control = None
            if controlnet:  # a loaded ControlNet refuses a pass without a control image
                control = os.path.join(tmp, f"control-{w}x{h}.png")
                Image.new("RGB", (w, h), (128, 128, 128)).save(control)
            p = GenerationParams(prompt="warm-up", seed=0, width=w, height=h, steps=2 if compiled else 1,
                                 control_image=control)
            engine.generate(p)
    seconds = time.perf_counter() - t0
    say(f"warm-up done in {seconds:.1f} s", quiet)
    return seconds


def check_control_pairing(control_image, controlnet) -> None:
    """--control and --controlnet come together (generate, trace): one without the other is a one-line error."""
    from ..errors import InvalidParams

    if control_image is not None and controlnet is None:
        raise InvalidParams("--control needs a ControlNet to read it: give --controlnet FILE (a Fun-Controlnet-Union "
                            ".safetensors; --controlnet tiny with --model tiny)")
    if controlnet is not None and control_image is None:
        raise InvalidParams("--controlnet acts only through a control image: give --control IMG too")


def say(msg: str, quiet: bool = False) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def unique_paths(folder, stems: list[str]) -> list:
    """folder/<stem>.png for each stem, numbered -1, -2, ... past files that exist (never overwrite)."""
    from pathlib import Path

    folder, paths = Path(folder), []
    for stem in stems:
        path, k = folder / f"{stem}.png", 1
        while path.exists() or path in paths:
            path, k = folder / f"{stem}-{k}.png", k + 1
        paths.append(path)
    return paths
