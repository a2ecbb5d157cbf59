"""zturbo bench: stock diffusers vs zturbo's fast paths on this GPU, in one run (see zturbo.benchmark.harness)."""

from __future__ import annotations

import argparse

HELP = "time stock diffusers against --fast, FP8 and GGUF modes on this GPU (random weights of the real model)"
DESCRIPTION = """Time Z-Image-Turbo on this GPU, stock diffusers against zturbo, in ONE run on ONE card.

Random weights of the real architecture time exactly like the released checkpoint, so nothing is
downloaded. Variants: stock (bf16, SDPA), plain (zturbo without --fast:
the same diffusers call through the engine), stock-q8 (Q8_0 GGUF dequantised on the fly: the article's
recipe), fast (--fast: the lossless tier, bf16), fp8 (+ every block GEMM in FP8, lossy: --fp8 --fp8-budget
all; bench/fp8_policy.py times the calibrated policy), q8-fp8 (--gguf-mode fp8 --fp8).
Each: prompt -> PNG seconds (median), first-call (compile) seconds, DiT seconds per pass, TFLOP/s
against the matmul ceilings measured in the same run, peak and transformer memory, and the relative
error of the final latents against stock bf16. Plus images/s at batch 1/2/4 and a cold vs warm
compile cache in fresh processes.

examples:
  zturbo bench --json bench/speed_H100.json
  zturbo bench --sizes 1024x1024 --variants stock,fast,fp8 --repeats 5
  zturbo bench --tiny --device cpu --sizes 64x64 --repeats 1   # smoke run of the harness
  zturbo bench --quality --sizes 1024x1024                      # PSNR/SSIM (+LPIPS) of --fp8 (calibrated, all-FP8)
                                                                # vs bf16 on your weights + per-GEMM FP8 errors
  zturbo bench --quality --tier fp8 --fp8-budget 0.03           # a tighter budget: more GEMMs kept bf16
  zturbo bench --quality --tier fast                            # the lossless tier vs bf16 eager
  zturbo bench --quality --quant q8 --gguf-mode fp8             # the Q8 file via FP8 vs bf16"""


from .. import defaults, geometry
from ..defaults import BENCH_VARIANTS as VARIANTS
from ..errors import InvalidParams
from .common import fp8_budget_arg


def _sizes(text: str) -> list[tuple[int, int]]:
    try:
        sizes = [geometry.parse_size(x) for x in text.split(",")]
        for w, h in sizes:  # positive multiples of 16 within the model's reach, as for generate
            geometry.check_side("width", w)
            geometry.check_side("height", h)
        return sizes
    except InvalidParams as exc:  # argparse would hide a ValueError's message behind "invalid value"
        raise argparse.ArgumentTypeError(str(exc)) from None


def _variants(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant {', '.join(unknown) or repr(text)}: "
                                         f"choose from {','.join(VARIANTS)}")
    return names


def _tiers(text: str) -> list[str]:
    from ..benchmark.quality import TIERS

    names = [x.strip() for x in text.split(",") if x.strip()]
    unknown = [x for x in names if x not in TIERS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown tier {', '.join(unknown) or repr(text)}: choose from {','.join(TIERS)}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default=None, help="torch device (default: the GPU if there is one)")
    p.add_argument("--sizes", type=_sizes, default=[(1024, 1024), (720, 1280)],
                   help="WxH[,WxH...] (default 1024x1024,720x1280): the first size gets every variant, the "
                        "others stock, stock-q8 and fp8")
    p.add_argument("--variants", type=_variants, default=list(VARIANTS),
                   help=f"comma-separated subset of {','.join(VARIANTS)}")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement after a warm-up (median reported)")
    p.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")] if s else [], default=[1, 2, 4],
                   help="images per pipeline call for images/s, stock and fp8 (default 1,2,4; '' skips). fp8's "
                        "forward runs a batch one image at a time (no compile per batch size; batching gained "
                        "1-2%% at 1 MP, bench/speed_H200.json)")
    p.add_argument("--no-compile-probe", dest="compile_probe", action="store_false",
                   help="skip the two fresh processes that time a cold and a warm compile cache")
    p.add_argument("--budget-s", type=float, default=480, help="optional parts are skipped past this many seconds")
    p.add_argument("--tiny", action="store_true", help="the tiny architecture: a smoke run of the harness")
    p.add_argument("--json", default=None, help="write the results here (e.g. bench/speed_H100.json)")
    q = p.add_argument_group("quality (real weights): --fast/--fp8's images against bf16 eager ones, PSNR / SSIM")
    q.add_argument("--quality", action="store_true",
                   help="render the same prompts and seeds with bf16 eager and with --fast (or --quant/--gguf "
                        "with --gguf-mode) and compare them, instead of timing")
    q.add_argument("--model", default=None, help=f"hub id or local folder (default {defaults.MODEL_ID})")
    q.add_argument("--quant", choices=defaults.QUANTS, default=None, help="the candidate's transformer (default bf16)")
    q.add_argument("--gguf", metavar="PATH", default=None, help="a local GGUF transformer for the candidate")
    q.add_argument("--gguf-mode", choices=defaults.GGUF_MODES, default=None, help="see zturbo generate --help")
    q.add_argument("--prompts", type=int, default=3, help="how many of the built-in prompts (1..3)")
    q.add_argument("--tier", type=_tiers, default=["fp8", "fp8-all"],
                   help="comma-separated candidates, each against bf16 eager: fast = --fast (lossless, bf16), fp8 = "
                        "--fp8 (the calibrated policy at --fp8-budget), fp8-all = every block GEMM FP8, uncalibrated "
                        "(default fp8,fp8-all: what the calibration buys)")
    q.add_argument("--fp8-budget", metavar="B", type=fp8_budget_arg, default=None,
                   help=f"the fp8 tier's budget (default {defaults.FP8_BUDGET:g}; see zturbo generate --help)")
    q.add_argument("--top", type=int, default=10, metavar="N",
                   help="rows of the per-GEMM FP8 error table printed for the fp8 tier (default 10)")
    p.add_argument("--probe", choices=("fp8", "bf16"), default=None, help=argparse.SUPPRESS)
    p.add_argument("--cap", type=int, default=160, help=argparse.SUPPRESS)


def run(args) -> int:
    if args.quality:
        from ..benchmark.quality import run_quality

        run_quality(args)
        return 0
    if not args.tiny and not args.probe:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not (device.startswith("cuda") and torch.cuda.is_available()):
            # the full-size model on a CPU runs out of memory or for hours: say so instead
            raise InvalidParams(
                f"zturbo bench times the full-size model on a CUDA GPU, and there is none here (device {device}); "
                "for a smoke run of the harness on a CPU: zturbo bench --tiny --device cpu --sizes 64x64 --repeats 1"
            )
    from ..benchmark.harness import run as run_bench

    run_bench(args)
    return 0
