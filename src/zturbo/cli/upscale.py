"""zturbo upscale: image(s) -> upscaled PNG(s) carrying their recipe plus the upscaler."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import defaults
from ..errors import InvalidParams
from .common import say, unique_paths
from .output import OVERWRITE_HELP, refuse_existing

HELP = "upscale image(s) with an ESRGAN/SPAN/SwinIR/... model (generate near native, then upscale)"
DESCRIPTION = f"""Upscale images with any super-resolution model spandrel recognises (ESRGAN, Real-ESRGAN,
SPAN, SwinIR, HAT, DAT, Compact, ...). The article's advice: generate near the native 1 MP, then upscale.

examples:
  zturbo upscale fox.png --model 4x-UltraSharp.safetensors               # 4x model -> 4x, in ./{defaults.OUTPUT_DIR}/
  zturbo upscale a.png b.png --model RealESRGAN_x4plus.pth --scale 2     # model at 4x, Lanczos down to 2x
  zturbo upscale fox.png --model 2x-SPAN.safetensors --tile 256 -o big.png
  zturbo generate "a red fox" --upscale 4x-UltraSharp.safetensors         # both in one run

weights: .safetensors preferred; .pth/.ckpt load through spandrel's restricted unpickler (tensors only);
TorchScript .pt files are refused, since loading one can run code. The output PNG keeps the input's
zturbo recipe and adds the upscaler's name, architecture, scale and sha256. Large images are cut into
overlapping tiles, sized by free memory unless --tile is given, and blended without seams."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s) to upscale (PNG, JPEG, WebP...)")
    p.add_argument("--model", required=True, metavar="FILE",
                   help="upscaler weights: .safetensors (preferred), .pth or .ckpt")
    p.add_argument("--scale", type=float, default=None,
                   help="output scale, e.g. 2 or 4 (default: the model's own factor; lower ones are "
                        "Lanczos-resized from the model's output)")
    p.add_argument("--tile", type=int, default=None,
                   help="tile side in input pixels; 0 = the whole image at once (default: sized by free memory)")
    p.add_argument("--overlap", type=int, default=defaults.UPSCALE_OVERLAP,
                   help=f"input pixels neighbouring tiles share, blended (default {defaults.UPSCALE_OVERLAP})")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "bf16"), default="auto",
                   help="auto: bf16 (else fp16) on a GPU where the architecture supports it, fp32 on a CPU")
    p.add_argument("--device", default=None, help="torch device: cuda, cuda:1, cpu. Default: the GPU if there is one")
    p.add_argument("-o", "--out", default=None,
                   help=f"a .png file (one input), or a folder (default ./{defaults.OUTPUT_DIR}/) where names "
                        "are IMAGE_x<scale>.png, numbered past existing files")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def output_file(out: str | None, images: list[str]) -> Path | None:
    """The -o file, or None when the outputs go to a folder."""
    if not (out and out.lower().endswith(".png")):
        return None
    if len(images) > 1:
        raise InvalidParams(f"-o {out} names one file but {len(images)} images were given: give a folder")
    return Path(out)


def output_paths(out: str | None, images: list[str], scale_label: str) -> list[Path]:
    file = output_file(out, images)
    if file is not None:
        return [file]
    folder = Path(out or defaults.OUTPUT_DIR)
    return unique_paths(folder, [f"{Path(image).stem}_x{scale_label}" for image in images])


class _TileBar:
    """One image's progress: drawn once the tile count is known ("0/9 tiles", or "0/1 piece" untiled, never
    "0/1" while 9 are coming), redrawn after every tile, the last one too, so that it ends at n/n."""

    def __init__(self, name: str, quiet: bool):
        self.name, self.quiet, self.bar = name, quiet, None

    def update(self, done: int, total: int) -> None:
        from tqdm import tqdm

        unit = "tiles" if total > 1 else "piece"
        if self.bar is None:
            self.bar = tqdm(total=total, unit=unit, desc=self.name, disable=self.quiet, file=sys.stderr,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} {unit} [{elapsed}<{remaining}]")
        self.bar.total, self.bar.n, self.bar.unit = total, done, unit  # from 0 again after an out-of-memory retry
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(args) -> int:
    from ..upscale import Upscaler, check_file, upscale_file

    missing = [i for i in args.images if not Path(i).is_file()]
    if missing:
        raise InvalidParams(f"no such image: {', '.join(missing)}")
    if args.scale is not None and args.scale <= 0:
        raise InvalidParams(f"--scale {args.scale:g}: use a positive factor such as 2 or 4")
    if args.overlap < 0:
        raise InvalidParams(f"--overlap {args.overlap}: use 0 or more pixels")
    file = output_file(args.out, args.images)
    if file is not None:  # (upscale_file refuses the input image itself even with --overwrite)
        refuse_existing([file], args.overwrite)
    check_file(args.model)  # before anything slow
    say(f"loading {args.model} ...", args.quiet)
    up = Upscaler.load(args.model, device=args.device, precision=args.precision)
    say(f"{up.info.architecture} {up.scale}x on {up.device} ({str(up.dtype).removeprefix('torch.')})", args.quiet)
    label = f"{args.scale if args.scale is not None else up.scale:g}"
    targets = output_paths(args.out, args.images, label)
    for source, target in zip(args.images, targets):
        bar = _TileBar(Path(source).name, args.quiet)
        try:
            path, rec = upscale_file(up, source, target, scale=args.scale, tile=args.tile,
                                     overlap=args.overlap, on_tile=bar.update)
        finally:
            bar.close()
        w, h = rec["output_size"]
        tiles = f"{rec['tiles']} tiles of {rec['tile']}" if rec["tiles"] > 1 else "1 piece"
        print(f"wrote {path}  {w}x{h}  ({tiles}, {rec['seconds']:.2f} s)")
    return 0


# -- zturbo generate --upscale FILE --------------------------------------------------------------
def load_upscaler(args):
    """The upscaler `generate --upscale` asked for (None without one), checked before generating."""
    scale = args.upscale_scale
    if not getattr(args, "upscale", None):
        if scale is not None:  # a typed value is never dropped silently
            raise InvalidParams("--upscale-scale goes with --upscale FILE (the upscaler model to run)")
        return None
    from ..upscale import Upscaler, check_file

    if scale is not None and scale <= 0:
        raise InvalidParams(f"--upscale-scale {scale:g}: use a positive factor such as 2 or 4")
    check_file(args.upscale)
    say(f"loading upscaler {args.upscale} ...", args.quiet)
    up = Upscaler.load(args.upscale, device=args.device)
    if scale is not None and scale > up.scale:
        raise InvalidParams(f"--upscale-scale {scale:g}: {up.info.name} is a {up.scale}x model")
    return up


def upscale_result(upscaler, result, scale: float | None = None) -> None:
    from ..upscale import upscale_result as _upscale_result

    _upscale_result(upscaler, result, scale=scale)
