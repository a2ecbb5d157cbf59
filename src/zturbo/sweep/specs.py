"""The article's six experiments (Part 2), exactly as it runs them: values, sizes, seed, prompt, file names.

Each builder holds everything fixed and moves one knob. Sizes can be scaled down for a quick run
(--size, --megapixels, --ladder-base); the values and names stay the article's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from importlib import metadata as importlib_metadata
from pathlib import Path

from .. import defaults, geometry
from ..errors import InvalidParams
from ..params import GenerationParams
from .plan import Experiment, Item, make_item, quant_order

# The article's fixed prompt ("P183"), byte for byte, newlines included: the same text gives the same embeddings.
ROBOT_PROMPT = """
A sleek black helmeted robot shown in a three-quarter profile against a solid red background
Subject: A highly detailed mechanical head featuring exposed wiring and internal gears beneath the glossy shell of the faceplate, with intricate metallic textures visible around the neck joint.
Clothing: Wearing a high-collared dark tactical jacket made of matte fabric with reinforced shoulder pads that have subtle mesh detailing and zippered accents along the seams; an illuminated red logo on the left shoulder reads 'Libel' in stylized font.
Lighting: Dramatic spotlight highlighting the curves of the helmet while casting deep shadows within its mechanical core, creating high contrast between reflective surfaces and dark recesses.
"""
ROBOT_PROMPT_NUMBER = 183  # the article's P in P183_STEP9_SEED42_720x1280.png

STEPS = (1, 3, 6, 9, 12, 15)  # Experiment 1
GUIDANCE = (0.0, 0.25, 0.5, 0.75, 1.0)  # Experiment 2, at 9 steps
SEEDS = (0, 7, 42, 123, 777, 2024, 88888, 1234567)  # Experiment 3, portrait and landscape
ASPECTS = ("21:9", "16:9", "3:2", "4:3", "5:4", "1:1", "4:5", "3:4", "2:3", "9:16", "9:21")  # Experiment 4, ~1 MP
LADDER = (3, 4, 5, 6, 7, 8)  # Experiment 5: 256x144 x n, n = 5 is the 1280x720 reference
UPSCALE_FACTORS = (1.0, 1.5, 2.0)  # Experiment 5's advice tested: direct at f x the frame vs the frame upscaled

BASE_EXPERIMENTS = ("steps", "guidance", "seeds", "aspect", "resolution")
EXPERIMENTS = (*BASE_EXPERIMENTS, "quant")  # `all` is every one of these
EXTRA_EXPERIMENTS = ("upscale",)  # not in `all`: it needs --upscaler FILE


@dataclasses.dataclass(frozen=True)
class ArticleSettings:
    """What the article holds fixed; each can be overridden from the command line."""

    prompt: str = ROBOT_PROMPT
    negative_prompt: str = ""
    seed: int = defaults.SWEEP_SEED
    steps: int = defaults.SWEEP_STEPS
    size: tuple[int, int] = defaults.SWEEP_SIZE  # the portrait frame; landscape is its transpose
    megapixels: float = 1.0  # the aspect sweep's budget
    ladder_base: tuple[int, int] = defaults.SWEEP_LADDER_BASE
    quant: str = "bf16"  # precision of the five base experiments
    quants: tuple[str, ...] = defaults.SWEEP_QUANTS  # Experiment 6
    rng: str | None = None
    max_megapixels: float = defaults.MAX_MEGAPIXELS
    upscaler: str | None = None  # the upscale experiment's model file

    def params(self, **changes) -> GenerationParams:
        fields = dict(prompt=self.prompt, negative_prompt=self.negative_prompt, steps=self.steps, guidance=0.0,
                      seed=self.seed, width=self.size[0], height=self.size[1], rng=self.rng,
                      max_megapixels=self.max_megapixels)
        fields.update(changes)
        return GenerationParams(**fields)

    @property
    def prompt_label(self) -> str:
        if self.prompt == ROBOT_PROMPT:
            return f"P{ROBOT_PROMPT_NUMBER}"
        return "P" + hashlib.sha256(self.prompt.encode()).hexdigest()[:6]


def diffusers_version() -> str:
    try:
        return importlib_metadata.version("diffusers")
    except importlib_metadata.PackageNotFoundError:
        return "unknown"


def step_mapping(version: str | None = None) -> str:
    """How the article's step counts map to transformer passes on the installed diffusers (>= 0.39: steps = passes)."""
    version = version or diffusers_version()
    try:
        major_minor = tuple(int(x) for x in version.split(".")[:2])
    except ValueError:
        major_minor = (0, 0)
    if major_minor >= (0, 39):
        return (f"steps = transformer passes on diffusers {version}: the article's STEP9 runs 9 passes here. "
                "The article used older diffusers, where its S steps ran S-1 passes (9 steps = 8 passes, the "
                "last step had dt = 0); for its 8-pass images use --steps 8. Each image records its real pass count.")
    return (f"on diffusers {version}, S steps run S-1 transformer passes (the last step has dt = 0), as in the "
            "article: STEP9 = 8 passes. Each image records its real pass count.")


def _check(names: list[str]) -> list[str]:
    chosen: list[str] = []
    for name in names:
        if name == "all":
            chosen.extend(EXPERIMENTS)
        elif name in EXPERIMENTS or name in EXTRA_EXPERIMENTS:
            chosen.append(name)
        else:
            raise InvalidParams(f"unknown experiment {name!r}: choose from {', '.join(EXPERIMENTS + EXTRA_EXPERIMENTS)} or all "
                                "(or use --vary / --file for your own grid)")
    if "quant" in chosen and not any(n in chosen for n in BASE_EXPERIMENTS):
        chosen.extend(BASE_EXPERIMENTS)  # `quant` alone re-runs the whole suite, as the article does
    return [n for n in EXPERIMENTS + EXTRA_EXPERIMENTS if n in chosen]


def _wh(w: int, h: int) -> str:
    return f"{w}x{h}"


def steps_experiment(s: ArticleSettings) -> Experiment:
    w, h = s.size
    items = [make_item("steps", f"steps/{s.prompt_label}_STEP{n}_SEED{s.seed}_{_wh(w, h)}.png",
                       s.params(steps=n), s.quant, {"steps": n}) for n in STEPS]
    return Experiment("steps", "Experiment 1: steps (transformer passes)", "steps", "row", [("steps", list(STEPS))], items)


def guidance_experiment(s: ArticleSettings) -> Experiment:
    w, h = s.size
    items = [make_item("guidance", f"guidance/{s.prompt_label}_STEP{s.steps}_SEED{s.seed}_{_wh(w, h)}_G{g}.png",
                       s.params(guidance=g), s.quant, {"guidance": g}) for g in GUIDANCE]
    return Experiment("guidance", f"Experiment 2: guidance (CFG) at {s.steps} steps", "guidance", "row",
                      [("guidance", list(GUIDANCE))], items)


def seeds_experiment(s: ArticleSettings) -> Experiment:
    w, h = s.size
    if w == h:
        raise InvalidParams(f"the seeds experiment compares portrait ({w}x{h}) with landscape ({h}x{w}): a square "
                            f"--size makes them one frame; give a portrait size such as {w}x{h * 2} (or run it "
                            "without --size: 720x1280, the article's)")
    items = []
    for row, (W, H) in (("portrait", (w, h)), ("landscape", (h, w))):
        for seed in SEEDS:
            items.append(make_item("seeds", f"seeds/SEED{seed}_{_wh(W, H)}.png", s.params(seed=seed, width=W, height=H),
                                   s.quant, {"seed": seed, "orientation": row, "size": _wh(W, H)}, row))
    return Experiment("seeds", "Experiment 3: seeds, portrait and landscape", "seed", "seeds",
                      [("seed", list(SEEDS)), ("orientation", ["portrait", "landscape"])], items)


def aspect_experiment(s: ArticleSettings) -> Experiment:
    items = []
    for aspect in ASPECTS:
        W, H = geometry.size_for_aspect(aspect, s.megapixels)
        items.append(make_item("aspect", f"aspect/{aspect.replace(':', 'x')}_{_wh(W, H)}.png",
                               s.params(width=W, height=H), s.quant, {"aspect": aspect, "size": _wh(W, H)}))
    return Experiment("aspect", f"Experiment 4: aspect ratio at ~{s.megapixels:g} MP", "aspect", "aspect",
                      [("aspect", list(ASPECTS))], items)


def resolution_experiment(s: ArticleSettings) -> Experiment:
    bw, bh = s.ladder_base
    g = math.gcd(bw, bh)
    ratio = (bw // g, bh // g)
    items = []
    for row, flip in (("landscape", False), ("portrait", True)):
        for n in LADDER:
            W, H = (bh * n, bw * n) if flip else (bw * n, bh * n)
            a, b = (ratio[1], ratio[0]) if flip else ratio
            items.append(make_item("resolution", f"resolution/{a}x{b}_{_wh(W, H)}.png", s.params(width=W, height=H),
                                   s.quant, {"n": n, "orientation": row, "size": _wh(W, H)}, row))
    return Experiment("resolution", f"Experiment 5: resolution ladder {bw}x{bh} x n", "size", "resolution",
                      [("n", list(LADDER)), ("orientation", ["landscape", "portrait"])], items)


def upscale_experiment(s: ArticleSettings) -> Experiment:
    """"Generate near native, then upscale" (Experiment 5's advice) put to a test: the same prompt and seed
    generated directly at 1x, 1.5x and 2x the frame, against the frame generated and then upscaled to the
    same sizes (snapped to the 16-pixel grid). Each record's seconds include the upscale."""
    from ..hashing import cached_sha256
    from ..upscale import check_file

    if not s.upscaler:
        raise InvalidParams("the upscale experiment needs an upscaler model: --upscaler FILE (.safetensors or .pth)")
    model = str(check_file(s.upscaler).resolve())
    sha = cached_sha256(model)  # part of the item: a resume with another upscaler file makes these again
    w, h = s.size
    items = []
    for f in UPSCALE_FACTORS:
        W, H = (max(1, int(v * f / defaults.SIZE_MULTIPLE + 0.5)) * defaults.SIZE_MULTIPLE for v in (w, h))
        axes = {"factor": f, "size": _wh(W, H)}
        items.append(make_item("upscale", f"upscale/direct_{f:g}x_{_wh(W, H)}.png", s.params(width=W, height=H),
                               s.quant, {**axes, "method": "direct"}, "direct"))
        if f != 1:  # at 1x the upscaled arm is the direct image itself
            items.append(make_item("upscale", f"upscale/upscaled_{f:g}x_{_wh(W, H)}.png", s.params(), s.quant,
                                   {**axes, "method": "upscaled"}, "upscaled", upscale={"model": model, "sha256": sha, "size": [W, H]}))
    return Experiment("upscale", f"Generate near native, then upscale ({Path(model).name}) vs generate directly",
                      "size", "resolution", [("factor", list(UPSCALE_FACTORS)), ("method", ["direct", "upscaled"])],
                      items)


def quant_experiment(s: ArticleSettings, base: list[Experiment]) -> Experiment:
    """Experiment 6: every image of the chosen experiments again at each precision. The base precision's
    column is the base experiments' own images (shared, not redone)."""
    quants = sorted(dict.fromkeys(s.quants), key=quant_order)
    sources = [item for exp in base for item in exp.items]
    items: list[Item] = []
    for src in sources:
        for q in quants:
            if q == src.quant:
                items.append(src)
            else:
                items.append(make_item("quant", f"quant/{q}/{src.file}", src.params, q,
                                       {**src.axes, "quant": q, "source": src.id}, src.row))
    return Experiment("quant", "Experiment 6: precision (" + ", ".join(quants) + ")", "quant", "quant",
                      [("quant", quants), ("source", [i.id for i in sources])], items)


BUILDERS = {"steps": steps_experiment, "guidance": guidance_experiment, "seeds": seeds_experiment,
            "aspect": aspect_experiment, "resolution": resolution_experiment, "upscale": upscale_experiment}


def article_experiments(names: list[str], settings: ArticleSettings | None = None) -> list[Experiment]:
    """The named experiments (`all` = the six), in the article's order."""
    settings = settings or ArticleSettings()
    for q in settings.quants:
        if q not in defaults.SWEEP_QUANT_CHOICES:
            raise InvalidParams(f"quant {q!r} is not one of {', '.join(defaults.SWEEP_QUANT_CHOICES)}")
    chosen = _check(names)
    base = [BUILDERS[n](settings) for n in chosen if n in BUILDERS]
    if "quant" in chosen:
        base.append(quant_experiment(settings, [e for e in base if e.name not in EXTRA_EXPERIMENTS]))
    return base
