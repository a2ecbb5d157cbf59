"""zturbo report: a sweep folder -> an offline, interactive field guide (DIR/report/index.html)."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path

from .. import defaults
from .common import say

HELP = "build the interactive report (pictures + measured metrics) for a sweep folder"
DESCRIPTION = f"""Build DIR/{defaults.REPORT_DIR}/index.html from a sweep folder: each experiment in the article's
layout (rows of steps and guidance, portrait/landscape seeds, aspect ratios at true proportions,
resolution frames sized by pixel count, quantizations side by side, any --vary grid as X/Y),
hover to enlarge, click for the full image, its recipe and the `zturbo generate` line that
reproduces it, a comparison slider per experiment, and metrics measured from the pixels
(SSIM/PSNR to the last step, contrast/saturation/clipping vs guidance, seed diversity,
detail and duplication vs resolution, drift vs bf16, seconds and memory vs pixels).
The page works from disk with no network; thumbnails are {defaults.REPORT_THUMB_PX}px WebP.

examples:
  zturbo sweep all --out runs/robot && zturbo report runs/robot
  zturbo sweep all --model tiny --size 32x64 --megapixels 0.01 --ladder-base 32x16 --out runs/robot  # offline, small
  zturbo report runs/robot --open      # and open it in the browser"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="a sweep folder (holds plan.json and manifest.jsonl)")
    p.add_argument("-o", "--out", default=None, help=f"where to write the report (default DIR/{defaults.REPORT_DIR})")
    p.add_argument("--open", action="store_true", help="open the report in the default browser")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the report's path")


def run(args: argparse.Namespace) -> int:
    from ..report import build_report

    index = build_report(args.dir, out=args.out, progress=lambda m: say(m, args.quiet))
    print(index)
    if args.open:
        uri = Path(index).resolve().as_uri()
        if not webbrowser.open(uri):
            say(f"no browser found to open it here: open {uri} on a machine with one")
    return 0
