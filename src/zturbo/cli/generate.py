"""zturbo generate: prompt -> PNG(s) carrying their recipe."""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from .. import defaults, geometry, inputs
from ..errors import InvalidParams
from ..metadata import read_recipe
from ..params import GenerationParams, seed_series
from .common import add_model_arguments, check_control_pairing, load_engine, load_options, say, unique_paths
from .output import OVERWRITE_HELP, refuse_existing
from .upscale import load_upscaler, upscale_result

HELP = "generate image(s) from a prompt"
DESCRIPTION = f"""Generate image(s) from a prompt with Z-Image-Turbo. Each PNG carries its full recipe.

examples:
  zturbo generate "a red fox in the snow" --seed 42
  zturbo generate "a city at night" --aspect 16:9 --megapixels 1.0 --num-images 4
  zturbo generate "a red fox" --quant q8                # the article's Q8 GGUF
  zturbo generate "a red fox" --fast                    # lossless: compile, fused blocks, CUDA graphs (GPU)
  zturbo generate "a red fox" --fp8                     # + FP8 GEMMs: faster, lossy (a trade you choose),
                                                        # calibrated on your weights (once, cached)
  zturbo generate "a red fox" --fp8 --fp8-budget 0.03   # more GEMMs kept bf16: closer to bf16, slower
  zturbo generate "a red fox" --quant q8 --gguf-mode fp8  # Q8 file at FP8 speed, ~its own memory (lossy)
  zturbo generate "a red fox" --model tiny -o fox.png   # offline demo model (noise by design)
  zturbo generate "a red fox" --model tiny --quant q8   # offline GGUF path: a tiny Q8_0 file written on the fly
  zturbo generate --from fox.png                        # re-run the recipe stored in an image
  zturbo generate "a red fox" --lora style.safetensors:0.8 --lora detail.safetensors  # LoRAs, merged at load
  zturbo generate "a red fox" --vram-budget 8           # fit an 8 GB card: auto picks offload and tiling
  zturbo doctor                                         # what auto would choose on this GPU, and why
  zturbo generate "a red fox" --upscale 4x-UltraSharp.safetensors  # near native, then upscale (see zturbo upscale)
  zturbo generate "a fox, oil painting" --image photo.jpg --strength 0.6   # image-to-image, at the photo's size
  zturbo generate "a red hat" --image photo.png --mask hat.png           # inpaint: white in the mask is repainted
  zturbo generate "a glass house" --controlnet Z-Image-Turbo-Fun-Controlnet-Union-2.1.safetensors \
      --control room.jpg --control-type canny --control-scale 0.8           # ControlNet: the edges of room.jpg
  zturbo generate "a fox" --model tiny --controlnet tiny --control edges.png   # offline ControlNet demo

steps are transformer passes (default {defaults.STEPS}, the distilled schedule); guidance
defaults to {defaults.GUIDANCE:g}: Turbo has guidance baked in, and > 0 doubles the cost."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=None, help="the prompt (or --prompt-file, or --from)")
    p.add_argument("--prompt-file", metavar="FILE", help="read the prompt from a text file")
    p.add_argument("--negative-prompt", default=None, help="only acts with guidance > 0")
    g = p.add_argument_group("knobs")
    g.add_argument("--steps", type=int, default=None, help=f"transformer passes, {defaults.MIN_STEPS}..{defaults.MAX_STEPS} (default {defaults.STEPS})")
    g.add_argument("--guidance", type=float, default=None,
                   help=f"CFG scale, 0..{defaults.GUIDANCE_MAX:g} (default {defaults.GUIDANCE:g}; > 0 is a contrast knob on "
                        "Turbo)")
    g.add_argument("--seed", default=None, help="0..2^64-1 (default: random, always recorded)")
    g.add_argument("--num-images", "-n", type=int, default=1, help="images with seeds S..S+N-1, each reproducible alone "
                   "(S+N-1 must not pass 2^64-1)")
    g.add_argument("--rng", choices=("cuda", "cpu"), default=None,
                   help="where the starting noise is drawn: cuda (the article's code; the default on a GPU) "
                        "or cpu (the same noise for a seed on any machine)")
    s = p.add_argument_group("size (default 1024x1024)")
    s.add_argument("--width", type=int, default=None)
    s.add_argument("--height", type=int, default=None)
    s.add_argument("--size", default=None, metavar="WxH", help="e.g. 720x1280 (width x height)")
    s.add_argument("--aspect", default=None, metavar="W:H", help="aspect ratio preset, e.g. 16:9, snapped to the 16-pixel grid")
    s.add_argument("--megapixels", type=float, default=None, help="with --aspect: total size, 1 MP = 1024x1024 (default 1.0)")
    s.add_argument("--max-megapixels", type=float, default=defaults.MAX_MEGAPIXELS,
                   help=f"refuse sizes above this (default {defaults.MAX_MEGAPIXELS:g})")
    i = p.add_argument_group("image-to-image and inpainting (diffusers' ZImageImg2ImgPipeline / ZImageInpaintPipeline)")
    i.add_argument("--image", metavar="IMG", default=None,
                   help="start from this PNG/JPEG/WebP instead of pure noise. The output takes its size: both sides "
                        "must be multiples of 16 (or --resize); a different --size is refused unless --resize. "
                        "A copy is written beside the output (NAME.input.EXT) for --from")
    i.add_argument("--mask", metavar="MASK", default=None,
                   help="inpaint: WHITE = repaint, BLACK = keep (diffusers' convention); the same size as --image")
    i.add_argument("--strength", type=float, default=None, metavar="S",
                   help=f"in (0, 1]: how far --image is noised before denoising; 1 repaints fully, smaller keeps more "
                        f"of it. Only the last S of the schedule runs (8 steps at 0.6 = 5 passes). Default "
                        f"{defaults.STRENGTH:g}, {defaults.INPAINT_STRENGTH:g} with --mask (diffusers' defaults)")
    i.add_argument("--resize", action="store_true",
                   help="resize --image (and --mask) to --size, or else to the nearest multiples of 16 (stretched, "
                        "Lanczos); never done without it")
    c = p.add_argument_group("ControlNet (diffusers' ZImageControlNetPipeline / ZImageControlNetInpaintPipeline; "
                             "needs --controlnet FILE)")
    c.add_argument("--control", metavar="IMG", default=None,
                   help="the control image (PNG/JPEG/WebP): an edge, depth or pose map, or a photo with "
                        "--control-type canny. Size rules as --image: the output takes its size (multiples of 16, "
                        "or --resize); with --image and --mask (inpainting) it must be their size. A copy is "
                        "written beside the output (NAME.control.EXT) for --from")
    c.add_argument("--control-scale", type=float, default=None, metavar="C",
                   help=f"0..{defaults.CONTROL_SCALE_MAX:g}: how strongly the ControlNet's hints steer each pass "
                        f"(diffusers' controlnet_conditioning_scale; 0 = off; default {defaults.CONTROL_SCALE:g}, "
                        "the model card works in 0.65..1.0)")
    c.add_argument("--control-type", choices=defaults.CONTROL_TYPES, default=None,
                   help="none (default): use --control as given; canny: compute its edges first (white on black)")
    add_model_arguments(p)
    o = p.add_argument_group("output")
    o.add_argument("-o", "--out", default=None,
                   help=f"a .png file (NAME_SEED.png for each of several images), or a folder where new names "
                        f"are picked (default ./{defaults.OUTPUT_DIR}/)")
    o.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    o.add_argument("--from", dest="from_image", metavar="IMAGE.png", default=None,
                   help="re-run the recipe stored in a zturbo PNG (flags given here override it)")
    o.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    u = p.add_argument_group("upscale (the article: generate near native, then upscale)")
    u.add_argument("--upscale", metavar="FILE", default=None,
                   help="then upscale with this spandrel model (.safetensors/.pth); the upscaled PNG is written "
                        "and its recipe names both")
    u.add_argument("--upscale-scale", type=float, default=None, help="upscale factor (default: the model's own)")


def _size(args, base: dict) -> tuple[int, int]:
    given = [n for n in ("size", "aspect") if getattr(args, n) is not None]
    if args.width is not None or args.height is not None:
        given.append("width/height")
    if len(given) > 1:
        raise InvalidParams(f"give one of --size, --aspect or --width/--height, not {' and '.join(given)}")
    if args.megapixels is not None and args.aspect is None:
        raise InvalidParams("--megapixels goes with --aspect (e.g. --aspect 16:9 --megapixels 1.0)")
    if args.size is not None:
        return geometry.parse_size(args.size)
    if args.aspect is not None:
        return geometry.size_for_aspect(args.aspect, 1.0 if args.megapixels is None else args.megapixels)
    # `is None`, not `or`: a typed 0 is refused like any bad width, never replaced by the default.
    # None: GenerationParams' default (the input image's size, or 1024x1024)
    width = args.width if args.width is not None else base.get("width")
    return width, args.height if args.height is not None else base.get("height")


def build_params(args) -> tuple[GenerationParams, dict]:
    """Params from the flags, on top of --from's recipe when given. Returns (params, model options)."""
    base: dict = {}
    model_opts = {"model": args.model, "quant": args.quant, "gguf": args.gguf}
    image, mask, resize, control = args.image, args.mask, args.resize, args.control
    if args.from_image:
        recipe = read_recipe(args.from_image)
        base = dict(recipe["params"])
        # the recipe's inputs, found by sha256 (the copies beside it first), except those given anew
        given = [r for r, v in (("image", image), ("mask", image), ("control", control)) if v is not None]
        found = inputs.recipe_inputs(recipe, args.from_image, skip=given)
        if image is None:
            image, mask = found.get("image"), mask if mask is not None else found.get("mask")
        control = control if control is not None else found.get("control")
        if not given:
            resize = resize or bool(base.get("resize"))
        else:  # another input: its own size, unless given
            base = {k: v for k, v in base.items() if k not in ("width", "height")}
        m = recipe.get("model", {})
        if args.model is None and args.gguf is None and args.quant is None:
            quant = m.get("quant")
            model_opts = {"model": m.get("model"), "quant": quant, "gguf": None}
            if quant == "gguf":
                model_opts.update(quant=None, gguf=m.get("weights_file"))
            elif quant in ("fp32", "fp16"):  # unquantised weights (the tiny model's float32): --quant bf16's load
                model_opts.update(quant="bf16")
        policy = recipe.get("fp8_policy")
        if policy and not args.fast:  # made with --fp8 (lossy): reproduce it with --fp8 at the same budget
            model_opts["fast"] = "fp8"
            if args.fp8_budget is None:
                model_opts["fp8_budget"] = policy.get("budget")
        if args.lora is None and recipe.get("loras"):  # the same LoRA files, unless --lora names others
            from ..lora import from_recipe

            model_opts["loras"] = from_recipe(recipe["loras"], args.from_image)
            # made with adapters beside the weights (serve's per-request LoRAs, a GGUF): the same again, bit for
            # bit; a merge rounds the weights otherwise (up to 7 levels on the tiny model in bf16). --fast fuses
            if not any(r.get("fused", True) for r in recipe["loras"]) and not (args.fast or args.fp8
                                                                               or model_opts.get("fast")):
                model_opts["fuse_loras"] = False
        if args.controlnet is None and recipe.get("controlnet"):  # the same ControlNet file, unless named
            from ..controlnet import from_recipe as controlnet_from_recipe

            model_opts["controlnet"] = controlnet_from_recipe(recipe["controlnet"], args.from_image)
    prompt = args.prompt
    if args.prompt_file:
        if prompt is not None:
            raise InvalidParams("give the prompt as an argument or with --prompt-file, not both")
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidParams(f"cannot read the prompt file: {exc}") from None
    if prompt is None:
        prompt = base.get("prompt")
    if prompt is None:
        raise InvalidParams('no prompt: zturbo generate "a red fox in the snow" (or --prompt-file, or --from IMAGE.png)')
    width, height = _size(args, base)
    fields = dict(
        prompt=prompt,
        negative_prompt=args.negative_prompt if args.negative_prompt is not None else base.get("negative_prompt", ""),
        steps=args.steps if args.steps is not None else base.get("steps", defaults.STEPS),
        guidance=args.guidance if args.guidance is not None else base.get("guidance", defaults.GUIDANCE),
        seed=args.seed if args.seed is not None else base.get("seed"),
        width=width, height=height,
        rng=args.rng if args.rng is not None else base.get("rng"),
        max_megapixels=args.max_megapixels,
        image=image, mask=mask, resize=resize,
        strength=args.strength if args.strength is not None else base.get("strength") if image else None,
        control_image=control,
        control_scale=(args.control_scale if args.control_scale is not None
                       else base.get("control_scale") if control else None),
        control_type=(args.control_type if args.control_type is not None
                      else base.get("control_type") if control else None),
    )
    if args.unfused_loras and not (args.lora or model_opts.get("loras")):
        raise InvalidParams("--unfused-loras says how to load LoRAs: give --lora FILE[:SCALE] (or --from an image "
                            "made with LoRAs)")
    return GenerationParams(**fields), model_opts


_OTHER_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif")


def output_paths(out: str | None, seeds: list[int]) -> list[Path]:
    """Where each image goes: a .png path (numbered by seed when several), or new names in a folder."""
    if out and Path(out).suffix.lower() in _OTHER_IMAGE_SUFFIXES:
        raise InvalidParams(f"-o {out}: zturbo writes PNG (the recipe lives in its text chunks): "
                            f"use {Path(out).with_suffix('.png')} or a folder")
    if out and out.lower().endswith(".png"):
        target = Path(out)
        if len(seeds) == 1:
            return [target]
        return [target.with_name(f"{target.stem}_{s}.png") for s in seeds]
    folder = Path(out or defaults.OUTPUT_DIR)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return unique_paths(folder, [f"{stamp}_{s}" for s in seeds])


def run(args) -> int:
    if args.num_images < 1:
        raise InvalidParams(f"--num-images must be at least 1, got {args.num_images}")
    params, model_opts = build_params(args)
    check_control_pairing(params.control_image, model_opts.get("controlnet", args.controlnet))
    try:
        seeds = seed_series(params.seed, args.num_images)  # the library's and the server's rule: never wraps
    except InvalidParams as exc:
        raise InvalidParams(f"--seed/--num-images: {exc}") from None
    for note in params.notes():
        say(f"note: {note}", args.quiet)
    targets = output_paths(args.out, seeds)  # a bad -o fails fast
    copies = [c for t in targets for c in inputs.copy_paths(t, params)]  # NAME.input.EXT, NAME.mask.EXT
    refuse_existing(targets + copies, args.overwrite)  # the --from image too: it was read already, but is kept unless asked
    upscaler = load_upscaler(args)  # before the pipeline: a bad upscaler file fails fast
    engine = load_engine(load_options(args, **model_opts), args.quiet)

    from tqdm import tqdm

    bar = tqdm(total=params.passes * args.num_images, unit="pass", disable=args.quiet, file=sys.stderr, leave=False)
    try:
        for seed, target in zip(seeds, targets):
            p = params.replace(seed=seed)
            bar.set_description(f"seed {p.seed}")
            result = engine.generate(p, on_step=lambda *_: bar.update(1))
            for w in result.recipes[0]["warnings"]:
                bar.write(f"warning: {w}", file=sys.stderr)
            if upscaler:
                upscale_result(upscaler, result, scale=args.upscale_scale)
            result.save([target])
            t = result.recipes[0]["timings"]
            mode = "" if p.image is None else f"{p.mode} (strength {p.strength:g})  "
            if p.control_image is not None:
                mode += f"ControlNet {p.control_type} x{p.control_scale:g}  "
            bar.write(
                f"wrote {target}  seed {p.seed}  {result.image.width}x{result.image.height}  {mode}{result.passes} passes  "
                f"{sum(t.values()):.2f} s (text {t['text_encoding']:.2f}, denoise {t['denoising']:.2f}, "
                f"decode {t['decoding']:.2f})",
                file=sys.stdout,
            )
    finally:
        bar.close()
    return 0
