"""zturbo inspect: what a .gguf / .safetensors weights file holds, and its error against a reference."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "show a weights file's tensors, quant types and bits per weight (and error vs a reference)"
DESCRIPTION = """Show what a .gguf or .safetensors file holds: architecture tag, tensor count, a histogram
of quant types (tensors, weights, bits per weight), which layer types were kept at higher precision
than the bulk (the K-quant recipes' "sensitive layers"), bytes and bits per weight. With --against
REF (full-precision weights of the same model, .safetensors in diffusers or original names, or a
BF16/F32 .gguf) it dequantizes every tensor and reports its relative error, summarised by layer type.

examples:
  zturbo inspect ~/.cache/huggingface/hub/models--unsloth--Z-Image-Turbo-GGUF/snapshots/*/z-image-turbo-Q4_K_M.gguf
  zturbo inspect z-image-turbo-Q2_K.gguf --against z-image-turbo-BF16.gguf
  zturbo inspect z-image-turbo-Q8_0.gguf --against ~/.cache/huggingface/hub/models--Tongyi-MAI--Z-Image-Turbo/snapshots/*/transformer
  zturbo inspect model.gguf --json --tensors"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a .gguf or .safetensors file")
    p.add_argument("--against", metavar="REF", default=None,
                   help="full-precision weights of the same model (a file, or a folder of .safetensors shards "
                        "such as the hub's transformer/): report each tensor's relative error")
    p.add_argument("--tensors", action="store_true", help="also list every tensor")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args) -> int:
    from ..weights_inspect import inspect_file, render

    result = inspect_file(args.file, against=args.against)
    if args.json:
        if not args.tensors:
            result.pop("per_tensor", None)
        json.dump(result, sys.stdout, indent=1)
        print()
    else:
        print(render(result, all_tensors=args.tensors))
    return 0
