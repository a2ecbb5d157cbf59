"""zturbo verify: the article's checklist against the installed stack and the loaded model."""

from __future__ import annotations

import argparse
import json
import sys

from .common import add_model_arguments, load_engine, load_options

HELP = "check the article's claims against the installed libraries and the loaded model"
DESCRIPTION = """Check every checkable claim of the article (parameter count, layers, width, heads, text
encoder, VAE factor and channels, patch size, the 512-token cap, the hidden layer used, steps ->
transformer passes, guidance -> evaluations, GGUF file sizes, diffusers version) against what is
installed and loaded here. Each row: claim | article says | measured | verdict, where the verdict is
"holds", "differs" (the article is out of date or wrong on this stack) or "can't check here" (and why).

examples:
  zturbo verify                         # the real model (from the HF cache)
  zturbo verify --model tiny            # offline: architecture rows use weightless builds of the published configs
  zturbo verify --model tiny --json     # for machines
  zturbo verify --strict                # exit 1 if any claim differs

Exit status: 0 when the checks ran (whatever they found), 1 with --strict and a claim that differs."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    o.add_argument("--strict", action="store_true", help="exit 1 if any claim differs")
    o.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")


def run(args) -> int:
    from ..errors import InvalidParams
    from ..verify import DIFFERS, render_table, run_verify

    if args.controlnet:  # the claims are about the base model; a loaded ControlNet would need a control image
        raise InvalidParams("zturbo verify checks the article's claims on the base model: drop --controlnet")
    engine = load_engine(load_options(args), args.quiet or args.json)
    result = run_verify(engine)
    if args.json:
        json.dump(result, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(render_table(result))
    return 1 if args.strict and result["summary"][DIFFERS] else 0
