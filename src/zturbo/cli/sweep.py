"""zturbo sweep: the article's six experiments, or any grid, into a resumable folder."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .. import defaults, geometry
from ..errors import InvalidParams
from .common import add_model_arguments, load_engine, load_options

HELP = "run the article's experiments or any grid (resumable, shardable)"
DESCRIPTION = f"""Run the article's Part 2 experiments, or any grid of settings, into one folder.

experiments (the article's values, sizes, seed {defaults.SWEEP_SEED} and robot prompt):
  steps       steps 1, 3, 6, 9, 12, 15 at 720x1280        steps/P183_STEP9_SEED42_720x1280.png
  guidance    guidance 0, 0.25, 0.5, 0.75, 1 at 9 steps    guidance/P183_STEP9_SEED42_720x1280_G0.25.png
  seeds       8 seeds at 720x1280 and 1280x720             seeds/SEED42_1280x720.png
  aspect      11 aspect ratios 21:9 .. 9:21 at ~1 MP        aspect/16x9_1360x768.png
  resolution  16:9 ladder 256x144 x n, n = 3..8, both ways  resolution/16x9_1280x720.png
  quant       the chosen experiments again at bf16, q8, q4, q2 (one model load each)  quant/q4/steps/...
  upscale     direct at 1x, 1.5x, 2x the frame vs the frame then --upscaler FILE   upscale/upscaled_2x_1440x2560.png
  all         all six

examples:
  zturbo sweep all --out sweeps/article                    # the whole article, one command
  zturbo sweep steps guidance --model tiny --size 64x112 --out /tmp/s   # quick offline run, small frames
  zturbo sweep --prompt "a red fox" --vary steps="4-12 (+4)" --vary guidance="0-1 [3]" --out sweeps/fox
  zturbo sweep --prompt "a fox, oil painting" --image photo.png --vary strength="0.2-1 [5]" --out sweeps/s
                                                           # image-to-image: S0.2 ... S1.0, strength x steps passes each
  zturbo sweep --prompt "a fox" --lora style.safetensors --vary lora_scale="0-1 [5]" --out sweeps/l
  zturbo sweep --prompt "a glass house" --controlnet union-2.1.safetensors --control edges.png \
      --vary control_scale="0-1.5 [4]" --out sweeps/c      # ControlNet: CS0 ... CS1.5, one load
                                                           # one --lora's scale: L0 ... L1, one model load per scale
  zturbo sweep --prompt "a fox" --vary lora=none,style.safetensors,ink.safetensors:0.8 --out sweeps/lf
                                                           # LoRA files as an axis (none = base model), one load each
  zturbo sweep --file fox.toml --dry-run                   # plan, image count, time and disk estimates
  accelerate launch -m zturbo sweep all --out sweeps/article   # one process per GPU, merged at the end
  zturbo sweep --merge sweeps/article                      # consolidate the manifest shards by hand

Re-running the same command resumes: images already on disk with their recorded hash are skipped,
failed ones are retried. A run that would replace images made in the folder with other settings (say the
same --vary grid at another --size) stops and says what differs: choose another --out or --name, or add
--overwrite. Another file at an --image / --mask path (another sha256), or at a LoRA's, counts as another
setting too. Each input image and mask is copied once into DIR/inputs/<sha256>.<ext> and the recipes point
there, so `zturbo report` and `generate --from` work after the original moves.
A precision whose weights cannot be loaded leaves its images pending; when none loads, the
sweep stops with that one error. The exit code is 1 when any image failed or was not made (the summary
lists them). Ctrl-C stops after writing the image
in hand, prints the summary of what was done and exits with 130: run the same command to resume."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiments", nargs="*", metavar="EXPERIMENT",
                   help="steps, guidance, seeds, aspect, resolution, quant, upscale (needs --upscaler), all")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help=f"the sweep folder (default {defaults.SWEEP_DIR}/<experiments>); re-run to resume")
    g = p.add_argument_group("prompt and grid")
    g.add_argument("--prompt", action="append", default=None, help="the prompt (default: the article's robot); "
                   "repeat it for several prompts in a grid")
    g.add_argument("--prompt-file", action="append", default=None, metavar="FILE", help="a prompt read from a text file")
    g.add_argument("--negative-prompt", default=None, help="only acts with guidance > 0")
    g.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                   help="a grid axis (x, then y, then z): steps, guidance, seed, size, aspect, megapixels, quant, prompt, "
                        "strength, image, lora_scale (the one --lora's scale: one load each), lora (LoRA files FILE[:SCALE] "
                        "or none, one load each), control_scale, control_image, ... Values are CSV, with "
                        "A1111 ranges: '1-15 (+2)', '0-1 [5]'")
    g.add_argument("--file", action="append", default=[], metavar="EXPERIMENT.toml",
                   help="an experiment file: name, prompt(s), [params], [axes] (see the README)")
    g.add_argument("--name", default="grid", help="the --vary grid's name and folder (default grid)")
    k = p.add_argument_group("fixed settings (override the article's, or set a grid's)")
    k.add_argument("--steps", type=int, default=None,
                   help=f"fixed steps (article: {defaults.SWEEP_STEPS}; a grid: {defaults.STEPS})")
    k.add_argument("--guidance", type=float, default=None,
                   help=f"a grid's fixed guidance, 0..{defaults.GUIDANCE_MAX:g} (default 0)")
    k.add_argument("--seed", default=None, help=f"fixed seed (default {defaults.SWEEP_SEED})")
    k.add_argument("--size", default=None, metavar="WxH",
                   help="the article's portrait frame (default 720x1280; landscape is its transpose), or a grid's size")
    k.add_argument("--aspect", default=None, metavar="W:H", help="a grid's aspect ratio preset (with --megapixels)")
    k.add_argument("--megapixels", type=float, default=None,
                   help="the aspect experiment's budget, or a grid's with --aspect (default 1.0)")
    k.add_argument("--ladder-base", default=None, metavar="WxH",
                   help="the resolution ladder's base box, times n = 3..8 (default 256x144)")
    k.add_argument("--quants", default=None, metavar="Q1,Q2",
                   help=f"the quant experiment's precisions (default {','.join(defaults.SWEEP_QUANTS)}); add "
                        f"fp8 (--fp8's calibrated policy) and fp8-all (every block GEMM FP8) to see FP8's cost beside "
                        f"them (a GPU with sm_89+; elsewhere those items are not made, and the sweep says why)")
    k.add_argument("--rng", choices=("cuda", "cpu"), default=None, help="where the starting noise is drawn")
    k.add_argument("--upscaler", default=None, metavar="FILE",
                   help="the upscale experiment's model (.safetensors/.pth; see zturbo upscale)")
    k.add_argument("--max-megapixels", type=float, default=defaults.MAX_MEGAPIXELS,
                   help=f"refuse sizes above this (default {defaults.MAX_MEGAPIXELS:g})")
    i = p.add_argument_group("image-to-image and inpainting (a grid's; vary strength with --vary strength=...)")
    i.add_argument("--image", default=None, metavar="IMG",
                   help="every image of the grid starts from IMG (PNG/JPEG/WebP; the output takes its size unless "
                        "--resize); several images: --vary image=a.png,b.png")
    i.add_argument("--mask", default=None, metavar="MASK",
                   help="inpaint: WHITE = repaint, BLACK = keep; the same size as --image")
    i.add_argument("--strength", default=None, metavar="S",
                   help=f"fixed strength in (0, 1] (default {defaults.STRENGTH:g}, {defaults.INPAINT_STRENGTH:g} with "
                        "--mask); image-to-image runs strength x steps passes")
    i.add_argument("--resize", action="store_true", help="resize --image (and --mask) to --size or the nearest "
                   "multiples of 16 (never done unless asked)")
    c = p.add_argument_group("ControlNet (a grid's; needs --controlnet FILE; vary the scale with --vary control_scale=...)")
    c.add_argument("--control", default=None, metavar="IMG",
                   help="every image of the grid is steered by this control image (sizes as --image); several: "
                        "--vary control_image=a.png,b.png")
    c.add_argument("--control-scale", default=None, metavar="C",
                   help=f"fixed ControlNet scale in 0..{defaults.CONTROL_SCALE_MAX:g} (default {defaults.CONTROL_SCALE:g})")
    c.add_argument("--control-type", choices=defaults.CONTROL_TYPES, default=None,
                   help="none (default): the control image as given; canny: its edges")
    add_model_arguments(p)
    r = p.add_argument_group("running")
    r.add_argument("--dry-run", action="store_true",
                   help="print the plan (images per experiment, shapes, disk, and the time on the device it resolves, "
                        "saying what the estimate is measured on) and stop")
    r.add_argument("--overwrite", action="store_true",
                   help="replace images an earlier run made in --out with other settings (refused without it)")
    r.add_argument("--merge", metavar="DIR", default=None, help="consolidate DIR's manifest shards into manifest.jsonl")
    r.add_argument("--no-merge", action="store_true",
                   help="with several processes: rank 0 does not wait for the others to merge (folders not shared)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")


def _prompts(args) -> list[str]:
    prompts = list(args.prompt or [])
    for name in args.prompt_file or []:
        try:
            prompts.append(Path(name).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise InvalidParams(f"cannot read the prompt file: {exc}") from None
    return prompts


def build_plan(args):
    """The Plan the flags describe: the named article experiments, then the --vary grid, then --file's."""
    from ..params import parse_seed
    from ..sweep import grid, specs
    from ..sweep.plan import Plan

    prompts = _prompts(args)
    seed = parse_seed(args.seed) if args.seed is not None else None
    base_quant = "gguf" if args.gguf else (args.quant or "bf16")
    experiments = []
    grid_given = bool(args.vary or args.file)
    # a value typed for something this run does not make is an error, never silently dropped
    if args.experiments and args.guidance is not None and not grid_given:
        raise InvalidParams("--guidance sets a grid's guidance; the article's experiments hold it at 0 "
                            "(the guidance experiment varies it)")
    if args.ladder_base and "resolution" not in args.experiments and "all" not in args.experiments \
            and "quant" not in args.experiments:
        raise InvalidParams("--ladder-base sets the resolution experiment's ladder: add `resolution` (or all)")
    if args.quants and "quant" not in args.experiments and "all" not in args.experiments:
        raise InvalidParams("--quants sets the quant experiment's precisions: add `quant` (or all), "
                            "or vary a grid with --vary quant=bf16,q8")
    typed_inputs = [f"--{k.replace('_', '-')}" for k in ("image", "mask", "strength", "resize", "control",
                                                          "control_scale", "control_type")
                    if getattr(args, k) not in (None, False)]
    if args.experiments and typed_inputs and not grid_given:
        verb = "sets" if len(typed_inputs) == 1 else "set"
        raise InvalidParams(f"{', '.join(typed_inputs)} {verb} a grid's input image; the article's experiments are "
                            "text-to-image: give --vary (e.g. --vary strength=\"0.2-1 [5]\") or --file")
    if args.experiments:
        if len(prompts) > 1:
            raise InvalidParams("the article's experiments use one prompt: give several prompts to a --vary grid")
        if args.aspect is not None:
            raise InvalidParams("--aspect sets a grid's size; the aspect experiment has its eleven ratios")
        quants = tuple(q.strip() for q in (args.quants or ",".join(defaults.SWEEP_QUANTS)).split(",") if q.strip())
        settings = specs.ArticleSettings(
            prompt=prompts[0] if prompts else specs.ROBOT_PROMPT,
            negative_prompt=args.negative_prompt or "",
            seed=defaults.SWEEP_SEED if seed is None else seed,
            steps=defaults.SWEEP_STEPS if args.steps is None else args.steps,
            size=geometry.parse_size(args.size) if args.size else defaults.SWEEP_SIZE,
            megapixels=1.0 if args.megapixels is None else args.megapixels,  # a typed 0 is refused, not 1.0
            ladder_base=geometry.parse_size(args.ladder_base) if args.ladder_base else defaults.SWEEP_LADDER_BASE,
            quant=base_quant, quants=quants, rng=args.rng, max_megapixels=args.max_megapixels,
            upscaler=args.upscaler,
        )
        experiments += specs.article_experiments(args.experiments, settings)
    fixed: dict = {"max_megapixels": args.max_megapixels}
    for key, value in (("steps", args.steps), ("guidance", args.guidance), ("seed", seed), ("size", args.size),
                       ("aspect", args.aspect), ("megapixels", args.megapixels if args.aspect else None),
                       ("rng", args.rng), ("negative_prompt", args.negative_prompt), ("image", args.image),
                       ("mask", args.mask), ("strength", args.strength), ("resize", args.resize or None),
                       ("control_image", args.control), ("control_scale", args.control_scale),
                       ("control_type", args.control_type)):
        if value is not None:
            fixed[key] = value
    if base_quant != "bf16":
        fixed["quant"] = base_quant
    grid_prompts = prompts or [specs.ROBOT_PROMPT]
    if args.vary:
        axes = [grid.parse_vary(v) for v in args.vary]
        if prompts and any(key == "prompt" for key, _ in axes):  # typed prompts are never dropped for an axis's
            raise InvalidParams("prompt is both given (--prompt/--prompt-file) and an axis: give either, e.g. "
                                '--vary prompt="a red fox,a blue fox" alone')
        experiments.append(grid.build_grid(args.name, grid_prompts, dict(fixed), axes))
    for path in args.file:
        experiments.append(grid.load_toml(path, grid_prompts, dict(fixed)))
    if not experiments:
        raise InvalidParams("nothing to sweep: name experiments (steps guidance seeds aspect resolution quant, or all), "
                            "or give --vary KEY=V1,V2 or --file EXPERIMENT.toml")
    _check_control(args, [i for e in experiments for i in e.items])
    model = {"model": args.model or defaults.MODEL_ID, "quant": base_quant, "gguf": args.gguf}
    # the prompt the images use (a --file grid names its own), not the one the flags would have given
    used = [i.params.prompt for e in experiments for i in e.items]
    return Plan(experiments, used[0] if used else specs.ROBOT_PROMPT, specs.step_mapping(), model)


def _check_control(args, items) -> None:
    """A control image needs --controlnet, and --controlnet needs a control image on every image of the run
    (the article's experiments have none): never a ControlNet loaded to do nothing."""
    controlled = [i for i in items if i.params.control_image is not None]
    if controlled and not args.controlnet:
        raise InvalidParams("a control image needs a ControlNet to read it: give --controlnet FILE")
    if args.controlnet and len(controlled) != len(items):
        raise InvalidParams("--controlnet acts only through a control image: give --control IMG (or vary "
                            "control_image) for a --vary / --file grid, and no article experiments")


def _default_out(args) -> Path:
    names = list(args.experiments) + ([args.name] if args.vary else []) + [Path(f).stem for f in args.file]
    return Path(defaults.SWEEP_DIR) / "-".join(dict.fromkeys(names))


def _merge(folder: str, quiet: bool) -> int:
    from ..sweep import load_sweep, merge
    from ..sweep.runner import summary_table

    merge(folder)
    sweep = load_sweep(folder)
    print(f"merged into {Path(folder) / 'manifest.jsonl'}")
    print(summary_table([(e["name"], e["items"]) for e in sweep.experiments], sweep.records))
    return 1 if any((sweep.records.get(i) or {}).get("status") != "ok" for i in sweep.items) else 0


def _interrupted(out: Path, plan, items: list) -> int:
    """Ctrl-C: the images made so far are on disk and in the manifest; say what was done and how to go on."""
    from ..sweep import manifest as mf
    from ..sweep.runner import summary_table

    records = mf.merged_records(out)
    print(summary_table(plan.groups({i.id for i in items}), records))
    done = sum(1 for i in items if (records.get(i.id) or {}).get("status") == "ok")
    print(f"interrupted: {done} of {len(items)} images done and kept in {out} (the manifest is whole); "
          "run the same command again to resume", file=sys.stderr)
    sys.stdout.flush()
    return 130


def _device(args, launch):
    """The device the run loads onto: --device, else one GPU per process when sharded (accelerate's
    LOCAL_RANK), else the GPU if there is one."""
    from ..machine import resolve_device

    return resolve_device(args.device, local_rank=launch.local_rank if launch.sharded else None)


def _target(args, dev):
    """What the dry run's time estimate is for: the device the run would use, by name."""
    import torch

    from ..paths import cache_dir, compile_cache_dir
    from ..sweep.plan import Target

    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type
    tier = "fp8" if args.fp8 else "lossless" if args.fast else None
    compile_cache = Path(compile_cache_dir())
    compiled = compile_cache.is_dir() and any(compile_cache.iterdir())
    calibrated = any((cache_dir() / defaults.FP8_POLICY_DIR).glob("*.json"))
    return Target(dev.type, name, (args.model or defaults.MODEL_ID) == defaults.TINY_MODEL, tier, compiled, calibrated)


def _controlnet_sha(path: str | None) -> str:
    """The sha256 a sweep's records hold for its ControlNet file ("" without one): resume compares it."""
    if not path:
        return ""
    from ..controlnet import check_file, tiny_file
    from ..hashing import cached_sha256

    check_file(path)  # missing or pickled: the one-line error, before anything is hashed
    return cached_sha256(tiny_file() if path == defaults.TINY_MODEL else path)


def _check_lora_scale(plan, loras) -> None:
    """A lora axis names its LoRAs itself (no --lora); a lora_scale axis scales exactly one --lora, typed
    without its own scale."""
    if loras and any(i.loras is not None for i in plan.items):
        names = ", ".join(Path(p).name for p, _ in loras)
        raise InvalidParams(f"--lora {names} and a lora axis both choose the LoRA: put every file in the axis "
                            "(e.g. --vary lora=none,a.safetensors,b.safetensors:0.8) and drop --lora")
    if not any(i.lora_scale is not None for i in plan.items):
        return
    if not loras:
        raise InvalidParams("lora_scale varies the scale of a LoRA: give the LoRA with --lora FILE "
                            "(e.g. --lora style.safetensors --vary lora_scale=\"0-1 [5]\")")
    if len(loras) > 1:
        names = ", ".join(Path(p).name for p, _ in loras)
        raise InvalidParams(f"lora_scale varies one LoRA's scale but {len(loras)} were given ({names}): give exactly "
                            "one --lora with a lora_scale axis (sweep the others' scales in another run)")
    path, scale = loras[0]
    if scale != 1.0:
        raise InvalidParams(f"--lora {path}:{scale:g} sets a scale and the lora_scale axis sets others: give "
                            f"--lora {path} without :SCALE")


def run(args) -> int:
    if args.merge:
        if args.experiments or args.vary or args.file:
            raise InvalidParams("--merge DIR consolidates an existing sweep: give it alone")
        return _merge(args.merge, args.quiet)

    from ..sweep import manifest as mf
    from ..sweep.plan import describe, shard
    from ..sweep.runner import Launch, check_no_overwrite, is_done, lora_key, run_sweep, say, summary_table

    plan = build_plan(args)
    out = Path(args.out) if args.out else _default_out(args)
    launch = Launch.from_env()
    model = args.model or defaults.MODEL_ID
    device = _device(args, launch)
    # every model option the other commands take (--fast, --memory, --lora, ...), one load per precision
    options = load_options(args, device=str(device))
    _check_lora_scale(plan, options.loras)
    loras = lora_key(options.loras)  # another LoRA or scale makes other images: resume compares them too
    controlnet = _controlnet_sha(options.controlnet)  # so does another ControlNet file
    if args.dry_run:
        print(describe(plan, target=_target(args, device)))
        records = mf.merged_records(out) if out.is_dir() else {}
        done = sum(1 for i in plan.items if is_done(out, i, records.get(i.id), model, loras, controlnet))
        if done:
            print(f"{out}: {done} of {len(plan.items)} images already done (a run resumes from there)")
        if launch.sharded:
            print(f"rank {launch.rank} of {launch.world_size}: {len(shard(plan.items, launch.rank, launch.world_size))} images")
        sys.stdout.flush()
        if out.is_dir() and not args.overwrite:
            check_no_overwrite(plan, out, records, model, loras, controlnet)  # the run would stop here: say so now
        return 0

    say(plan.step_mapping, args.quiet)

    def loader(quant: str, lora_scale: float | None = None, loras: tuple | None = None):
        load = options.with_quant(quant)
        if lora_scale is not None:  # the one --lora at this item's scale: another fused load
            load = dataclasses.replace(load, loras=((load.loras[0][0], lora_scale),))
        if loras is not None:  # a lora axis's value: its files (none: the base model), fused at load
            load = dataclasses.replace(load, loras=loras)
        if quant in defaults.SWEEP_FP8_TIERS:
            from ..speed.fp8_policy import require_fp8

            return require_fp8(load, lambda: load_engine(load, args.quiet))
        return load_engine(load, args.quiet)

    try:
        outcome = run_sweep(plan, out, loader=loader, model=model, launch=launch, quiet=args.quiet,
                            merge=not args.no_merge, overwrite=args.overwrite, loras=loras, controlnet=controlnet)
    except KeyboardInterrupt:
        return _interrupted(out, plan, shard(plan.items, launch.rank, launch.world_size))
    print(summary_table(plan.groups({i.id for i in outcome.items}), outcome.records, outcome.not_loaded))
    print(f"sweep folder: {out}")
    sys.stdout.flush()
    return 1 if outcome.any_failed else 0
