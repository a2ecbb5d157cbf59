"""What a sweep makes: Items grouped into Experiments, a Plan over them, plan.json and the dry-run estimate.

An item is one image: its params, its quant, its file (relative to the sweep folder) and its place on
the experiment's axes. Its id is its file path without ".png", so ids are unique, readable and stable.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .. import defaults
from ..errors import InvalidParams
from ..params import GenerationParams
from .manifest import PLAN_VERSION


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    experiment: str
    file: str
    params: GenerationParams
    quant: str
    axes: dict[str, Any]
    row: str | None = None
    upscale: dict[str, Any] | None = None  # {"model": FILE, "sha256": ..., "size": [W, H]}: the image is upscaled
    lora_scale: float | None = None  # the scale of the sweep's one --lora for this image; None: --lora's own
    loras: tuple[tuple[str, float], ...] | None = None  # a lora axis's (path, scale) pairs, () = none; None: --lora's

    def to_plan(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "file": self.file, "params": self.params.to_dict(),
                "quant": self.quant, "axes": self.axes, "row": self.row,
                **({"upscale": self.upscale} if self.upscale else {}),
                **({"lora_scale": self.lora_scale} if self.lora_scale is not None else {}),
                **({"loras": [list(x) for x in self.loras]} if self.loras is not None else {})}

    @property
    def load(self) -> Load:
        """What the model load this image needs depends on: items of one load run together."""
        return (self.quant, self.lora_scale, self.loras)

    @property
    def megapixels(self) -> float:
        return self.params.width * self.params.height / defaults.MEGAPIXEL

    def seconds(self, rates: dict[str, Any]) -> float:
        """Estimated seconds at `rates` (a defaults.SWEEP_EST_* set): transformer evaluations (guidance > 0
        runs two per pass; image-to-image runs only the passes its strength keeps) plus a decode."""
        evals = self.params.passes * (2 if self.params.uses_cfg else 1)
        mp = self.megapixels
        fp8 = self.quant in defaults.SWEEP_FP8_TIERS  # bf16 weights, FP8 GEMMs: the fp8 pass rate where measured
        per_mp = rates.get("fp8_pass_s_per_mp", rates["pass_s_per_mp"]) if fp8 else rates["pass_s_per_mp"]
        s = evals * (rates["pass_s"] + per_mp * mp) + rates["decode_s_per_mp"] * mp
        return s * (1.0 if self.quant == "bf16" or fp8 else rates["gguf_factor"])

    @property
    def cost(self) -> float:
        """Relative work (GPU seconds), to balance shards and drive the progress bar; never shown."""
        return self.seconds(defaults.SWEEP_EST_GPU)


def make_item(experiment: str, file: str, params: GenerationParams, quant: str, axes: dict[str, Any],
              row: str | None = None, upscale: dict[str, Any] | None = None, lora_scale: float | None = None,
              loras: tuple[tuple[str, float], ...] | None = None) -> Item:
    if not file.endswith(".png"):
        raise ValueError(f"item file must be a .png path, got {file!r}")
    return Item(file[: -len(".png")], experiment, file, params, quant, axes, row, upscale, lora_scale, loras)


# (precision, the one --lora's scale or None, a lora axis's LoRAs or None): one model load
Load = tuple[str, float | None, tuple[tuple[str, float], ...] | None]


def load_order(load: Load) -> tuple:
    """Loads in order: by precision (bf16 first), then by LoRA scale; a lora axis's files keep the axis's order
    (sort a plan-ordered list with this key)."""
    quant, scale, loras = load
    return (quant_order(quant), scale is not None, scale or 0.0, loras is not None)


def load_label(load: Load) -> str:
    """'bf16', 'bf16 LoRA x0.5' for a lora_scale load, 'bf16 LoRA style.safetensors:0.8' or 'bf16 no LoRA'
    for a lora axis's."""
    quant, scale, loras = load
    if loras is not None:
        from pathlib import Path

        return f"{quant} " + (", ".join(f"LoRA {Path(p).name}:{s:g}" for p, s in loras) or "no LoRA")
    return quant if scale is None else f"{quant} LoRA x{scale:g}"


@dataclasses.dataclass
class Experiment:
    name: str
    title: str
    knob: str
    layout: str  # row | seeds | aspect | resolution | quant | grid
    axes: list[tuple[str, list[Any]]]
    items: list[Item]

    def to_plan(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "knob": self.knob, "layout": self.layout,
                "axes": [{"key": k, "values": list(v)} for k, v in self.axes],
                "items": [i.id for i in self.items]}


@dataclasses.dataclass
class Plan:
    experiments: list[Experiment]
    prompt_default: str
    step_mapping: str
    model: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [e.name for e in self.experiments]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InvalidParams(f"experiment name(s) {', '.join(sorted(dup))} used twice: give each a different name")
        seen: dict[str, Item] = {}
        for exp in self.experiments:
            for item in exp.items:
                other = seen.setdefault(item.id, item)
                if other is not item and other != item:
                    raise InvalidParams(f"two different images would be written to {item.file}: rename an experiment")

    @property
    def items(self) -> list[Item]:
        """Every item once, in plan order (the quant experiment shares its bf16 column with the others)."""
        out: dict[str, Item] = {}
        for exp in self.experiments:
            for item in exp.items:
                out.setdefault(item.id, item)
        return list(out.values())

    def to_json(self, existing: dict[str, Any] | None = None) -> dict[str, Any]:
        """plan.json. Experiments of an earlier plan in the same folder that this one does not redo are
        kept, so `sweep steps` then `sweep seeds` into one folder leaves a plan holding both."""
        experiments, items = [], {}
        mine = {e.name for e in self.experiments}
        if existing:
            for exp in existing.get("experiments", []):
                if exp["name"] not in mine:
                    experiments.append(exp)
                    for item_id in exp["items"]:
                        if item_id in existing.get("items", {}):
                            items[item_id] = existing["items"][item_id]
        for exp in self.experiments:
            experiments.append(exp.to_plan())
        for item in self.items:
            items[item.id] = item.to_plan()
        prompts = list(dict.fromkeys(i["params"]["prompt"] for i in items.values()))  # every prompt used, in order
        return {"version": PLAN_VERSION, "prompt_default": self.prompt_default, "prompts": prompts,
                "step_mapping": self.step_mapping, "model": self.model, "experiments": experiments, "items": items}

    def estimate(self, pending: list[Item] | None = None, target: Target | None = None) -> dict[str, Any]:
        """Item count, distinct shapes, rough time on `target` (None when nothing measured fits) and
        worst-case disk."""
        items = self.items if pending is None else pending
        shapes = sorted({(i.params.width, i.params.height) for i in items}, key=lambda s: (s[0] * s[1], s))
        quants = sorted({i.quant for i in items}, key=quant_order)
        loads = len({i.load for i in items})  # one per precision, LoRA scale and LoRA file
        rates = (target or Target()).rates
        seconds = None
        if rates is not None and items:
            seconds = rates["startup_s"] + rates["load_s"] * loads + sum(i.seconds(rates) for i in items)
        return {
            "items": len(items),
            "shapes": shapes,
            "quants": quants,
            "loads": loads,
            "prompts": len({i.params.prompt for i in items}),
            "passes": sum(i.params.passes for i in items),  # what the run records, image by image
            "seconds": seconds,
            "bytes": estimated_bytes(items),
        }

    def groups(self, only: set[str] | None = None) -> list[tuple[str, list[str]]]:
        """(experiment, item ids) in plan order, restricted to `only`: the one count of images per experiment
        that the dry run and the summaries print. The quant experiment's base column is shared with the
        experiments it repeats, so it counts in both rows and once in "all"."""
        return [(e.name, [i.id for i in e.items if only is None or i.id in only]) for e in self.experiments]


@dataclasses.dataclass(frozen=True)
class Target:
    """The device a sweep will run on, as far as the time estimate cares: kind (cuda, cpu, mps, or None
    when not resolved), its name, and whether the model is the tiny demo model."""

    kind: str | None = None
    name: str = ""
    tiny: bool = False
    tier: str | None = None  # --fast's tier (lossless | fp8), None: plain
    compiled_before: bool = False  # the compile cache holds artifacts (a second --fast run compiles from it)
    calibrated_before: bool = False  # --fp8 calibrations are cached (assumed to be these weights')

    @property
    def rates(self) -> dict[str, Any] | None:
        """The measured rates that describe this device, or None (the tiny model on a GPU: not measured). With a
        tier on the real model: its pass rate, and its compile (and --fp8's calibration) added to the start."""
        if self.tiny:
            return defaults.SWEEP_EST_TINY_CPU if self.kind in ("cpu", None) else None
        base = {**defaults.SWEEP_EST_GPU,  # on a CPU too, but said to be the GPU's (see time_line)
                "fp8_pass_s_per_mp": defaults.SWEEP_EST_GPU_TIERS["fp8"]["pass_s_per_mp"]}
        if self.tier is None:
            return base
        t = defaults.SWEEP_EST_GPU_TIERS[self.tier]
        compile_s = t["compile_warm_s"] if self.compiled_before else t["compile_s"]
        calibrate_s = 0.0 if self.calibrated_before else t["calibrate_s"]
        return {**base, "pass_s_per_mp": t["pass_s_per_mp"], "startup_s": base["startup_s"] + compile_s + calibrate_s,
                "compile_s": compile_s, "calibrate_s": calibrate_s}

    def time_line(self, seconds: float | None) -> str:
        """The dry run's time estimate: which device, which model, and what the numbers are measured on."""
        rates = self.rates
        where = self.name or self.kind or ""
        if rates is None:
            return (f"estimated time on {where}: not estimated for the tiny demo model on a GPU (a fraction of a "
                    "second an image; the rates measured are the real model's on a GPU and the tiny model's on a CPU)")
        t = format_seconds(seconds or 0.0)
        gguf = f"GGUF quants x{rates['gguf_factor']:g}"
        if self.tiny:
            return (f"estimated time on {where or 'cpu'}: {t} for the tiny demo model (rates measured on "
                    f"{rates['measured_on']}: {rates['pass_s']:g} s + {rates['pass_s_per_mp']:g} s/MP a pass, "
                    f"{rates['decode_s_per_mp']:g} s/MP a decode, {gguf}, {rates['startup_s']:g} s to start and "
                    f"{rates['load_s']:g} s a model load; another CPU differs)")
        basis = (f"bf16 rates measured on an {rates['measured_on']}: {rates['pass_s_per_mp']} s a pass and "
                 f"{rates['decode_s_per_mp']} s a decode per MP, {gguf}, {rates['load_s']:g} s a model load")
        if self.tier is not None:
            flag = "--fp8" if self.tier == "fp8" else "--fast"
            cache = "from the compile cache" if self.compiled_before else "on an empty compile cache"
            calib = f" + {rates['calibrate_s']:g} s calibrating" if rates["calibrate_s"] else ""
            basis = (f"{flag} rates measured on an {rates['measured_on']}: {rates['pass_s_per_mp']} s a pass and "
                     f"{rates['decode_s_per_mp']} s a decode per MP, {rates['compile_s']:g} s compiling {cache}"
                     f"{calib}, {gguf}, {rates['load_s']:g} s a model load")
        card = rates["measured_on"]
        if self.kind == "cuda" and card.lower() in self.name.lower():
            return f"estimated time on {self.name}: {t} ({basis})"
        if self.kind is None:
            return f"estimated time on an {card} (no device resolved): {t} ({basis})"
        if self.kind != "cpu":
            return f"estimated time on {where}: {t} if it runs as fast as an {card} ({basis}; a smaller card is slower)"
        return (f"no GPU here (cpu): the real model is not estimated on a CPU (minutes an image); on an {card} "
                f"the sweep would take {t} ({basis})")


def estimated_bytes(items: list[Item]) -> int:
    return math.ceil(sum(i.params.width * i.params.height * defaults.SWEEP_PNG_BYTES_PER_PIXEL for i in items))


def quant_order(q: str) -> tuple[int, str]:
    """bf16 first, then q8, q4, q2, then anything else (a --gguf file)."""
    return (defaults.QUANTS.index(q) if q in defaults.QUANTS else len(defaults.QUANTS), q)


def shard(items: list[Item], rank: int, world_size: int) -> list[Item]:
    """This rank's items, deterministically: the most expensive first, each to the least-loaded rank
    (ties to the lower rank), per load (precision, LoRA scale) so every process makes each load at most once and the
    work is balanced even when sizes differ (the resolution ladder). Returned in plan order."""
    if world_size <= 1:
        return list(items)
    if not 0 <= rank < world_size:
        raise InvalidParams(f"rank {rank} is outside 0..{world_size - 1} (check RANK and WORLD_SIZE)")
    position = {item.id: n for n, item in enumerate(items)}
    mine: set[str] = set()
    for key in sorted({i.load for i in items}, key=load_order):
        load = [0.0] * world_size
        group = sorted((i for i in items if i.load == key), key=lambda i: (-i.cost, position[i.id]))
        for item in group:
            r = min(range(world_size), key=lambda k: (load[k], k))
            load[r] += item.cost
            if r == rank:
                mine.add(item.id)
    return [i for i in items if i.id in mine]


def format_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    s = int(round(s))
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _short(values: list[Any], most: int = 12) -> str:
    shown = ", ".join(map(str, values[:most]))
    return shown if len(values) <= most else f"{shown}, ... ({len(values)} in all)"


def describe(plan: Plan, pending: list[Item] | None = None, target: Target | None = None) -> str:
    """The --dry-run text: per experiment the same image counts as the run's closing summary."""
    target = target or Target()
    est = plan.estimate(pending, target)
    items = plan.items if pending is None else pending
    only = None if pending is None else {i.id for i in pending}
    lines = []
    for exp, (_, ids) in zip(plan.experiments, plan.groups(only)):
        axes = "; ".join(f"{k}: {_short(v)}" for k, v in exp.axes)
        lines.append(f"  {exp.name:<11} {len(ids):>4} images  {exp.title}  ({axes})")
    shared = shared_note(plan.groups(only))
    shapes = ", ".join(f"{w}x{h}" for w, h in est["shapes"])
    lines += [
        *([shared] if shared else []),
        f"{est['items']} images, {len(est['shapes'])} distinct shapes ({shapes}), {est['prompts']} prompt(s), "
        f"precision(s): {', '.join(est['quants'])}; {loads_text(est['loads'], items)}",
        f"{est['passes']} transformer passes in all{_img2img_note(items)}",
        target.time_line(est["seconds"]),
        f"estimated disk: {format_bytes(est['bytes'])} at most",
        plan.step_mapping,
    ]
    return "\n".join(lines)


def loads_text(loads: int, items: list[Item]) -> str:
    """'2 model loads (one per precision and LoRA scale)': what the dry run and the run say."""
    if any(i.loras is not None for i in items):
        per = "precision and LoRA"
    else:
        per = "precision and LoRA scale" if any(i.lora_scale is not None for i in items) else "precision"
    return f"{loads} model load{'s' if loads != 1 else ''} (one per {per})"


def _img2img_note(items: list[Item]) -> str:
    n = sum(i.params.image is not None for i in items)
    return f" ({n} image-to-image: strength x steps passes each)" if n else ""


def shared_note(groups: list[tuple[str, list[str]]]) -> str:
    """Why the experiments' rows add up to more than "all" (the quant experiment's base column)."""
    seen: set[str] = set()
    shared = 0
    for _, ids in groups:
        shared += sum(1 for i in ids if i in seen)
        seen.update(ids)
    if not shared:
        return ""
    return (f"  ({shared} image(s) belong to two experiments: the quant experiment's base-precision column is the "
            "other experiments' own images, counted once in the total)")
