"""zturbo trace: one generation, watched at the article's eight stages (Part 3)."""

from __future__ import annotations

import argparse
import json
import sys

from .. import defaults, geometry
from ..params import GenerationParams
from .common import add_model_arguments, check_control_pairing, load_engine, load_options, say

HELP = "generate once and show what happens at each of the eight stages (article Part 3)"
DESCRIPTION = f"""Generate one image with hooks at the eight stages from prompt to picture, and report
what actually happened, read from the running pipeline: the chat-templated tokens and the
{defaults.MAX_SEQUENCE_LENGTH}-token cap, the text encoder layer that feeds the DiT, the noise, latent and
patch grid, the single-stream sequence and its padding, the 3D RoPE positions, the sigma schedule
with the transformer passes counted and timed, and the VAE decode. With --image (and --mask) a stage
3i shows the input image becoming the initial latents: VAE-encoded, noised to the strength's first
sigma (the passes before it skipped), and for inpainting the mask at latent resolution.

examples:
  zturbo trace                                      # the article's robot prompt, 1024x1024
  zturbo trace "a red fox in the snow" --seed 7 --out trace-fox   # + trace.json, filmstrip.png, trace.html
  zturbo trace --model tiny --size 64x64 --json     # offline demo model, JSON for machines
  zturbo trace "a fox, oil painting" --image photo.png --strength 0.6 --out trace-i2i   # + stage 3i
  zturbo trace --model tiny --controlnet tiny --control edges.png   # + the ControlNet branch (stage 7c)

--out DIR writes trace.json, filmstrip.png (the model's clean-image estimate after every pass,
decoded), image.png and a self-contained trace.html."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=defaults.TRACE_PROMPT,
                   help="the prompt (default: the first line of the article's robot prompt)")
    g = p.add_argument_group("knobs")
    g.add_argument("--size", default=None, metavar="WxH",
                   help=f"image size (default {defaults.WIDTH}x{defaults.HEIGHT}, or the --image / --control image's)")
    g.add_argument("--seed", default="42", help="0..2^64-1 (default 42, the article's)")
    g.add_argument("--steps", type=int, default=defaults.STEPS, help=f"transformer passes (default {defaults.STEPS})")
    g.add_argument("--guidance", type=float, default=defaults.GUIDANCE,
                   help=f"CFG scale, 0..{defaults.GUIDANCE_MAX:g} (default {defaults.GUIDANCE:g})")
    g.add_argument("--rng", choices=("cuda", "cpu"), default=None, help="where the noise is drawn (default: the GPU if any)")
    i = p.add_argument_group("image-to-image and inpainting (adds stage 3i: the input image to the initial latents)")
    i.add_argument("--image", metavar="IMG", default=None, help="start from IMG (PNG/JPEG/WebP, sides multiples of 16)")
    i.add_argument("--mask", metavar="MASK", default=None, help="inpaint: WHITE = repaint, BLACK = keep")
    i.add_argument("--strength", type=float, default=None, metavar="S",
                   help=f"in (0, 1] (default {defaults.STRENGTH:g}, {defaults.INPAINT_STRENGTH:g} with --mask): the "
                        "first sigma, and strength x steps passes run")
    c = p.add_argument_group("ControlNet (with --controlnet FILE): the control branch is shown as stage 7c")
    c.add_argument("--control", metavar="IMG", default=None, help="the control image (the output takes its size)")
    c.add_argument("--control-scale", type=float, default=None, metavar="C",
                   help=f"0..{defaults.CONTROL_SCALE_MAX:g} (default {defaults.CONTROL_SCALE:g})")
    c.add_argument("--control-type", choices=defaults.CONTROL_TYPES, default=None, help="none (default) or canny")
    add_model_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("--out", metavar="DIR", default=None, help="write trace.json, filmstrip.png, image.png, trace.html here")
    o.add_argument("--json", action="store_true", help="print the trace as JSON instead of a table")
    o.add_argument("-q", "--quiet", action="store_true", help="no notes on stderr")


def run(args) -> int:
    from ..trace import run_trace
    from ..trace_report import render_table, write_trace

    # without --size: the --image's or --control image's size (GenerationParams reads it), else the default
    width, height = geometry.parse_size(args.size) if args.size is not None else (None, None)
    params = GenerationParams(prompt=args.prompt, seed=args.seed, width=width, height=height,
                              steps=args.steps, guidance=args.guidance, rng=args.rng,
                              image=args.image, mask=args.mask, strength=args.strength, control_image=args.control,
                              control_scale=args.control_scale, control_type=args.control_type)
    check_control_pairing(params.control_image, args.controlnet)
    engine = load_engine(load_options(args), args.quiet or args.json)
    pictures: dict = {}
    trace, previews, image = run_trace(engine, params, pictures)
    if args.out:
        paths = write_trace(args.out, trace, previews, image, pictures)
        say(f"wrote {paths['html']} (+ trace.json, filmstrip.png, image.png)", args.quiet)
    if args.json:
        json.dump(trace, sys.stdout, indent=1, ensure_ascii=False)
        print()
    else:
        print(render_table(trace))
    return 0
