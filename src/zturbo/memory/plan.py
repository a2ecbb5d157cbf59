"""The choice: (free GPU memory, image size, precisions on disk) -> precision + offload mode.

Pure arithmetic on the estimates in defaults.py (measured: bench/memory_*.json), so the whole
policy is tested on a CPU. Each option's peak is the largest of its three stages (text encoding,
denoising, decoding), counting what stays resident through all of them.
"""

from __future__ import annotations

import dataclasses

from .. import defaults as d
from ..errors import InvalidParams

# How the text encoder is placed: on the GPU for good ("gpu"), streamed block by block from CPU
# memory when a new prompt comes ("stream"; group offload, freed after use: embeddings are cached),
# or moved whole by diffusers' model offload ("offload") / sequential offload ("sequential").
TEXT_ENCODER_PLACES = ("gpu", "stream", "offload", "sequential")


@dataclasses.dataclass(frozen=True)
class Plan:
    mode: str  # one of defaults.MEMORY_MODES
    quant: str  # transformer precision: bf16 | q8 | q4 | q2 | gguf (a --gguf file) | fp8 (bf16 weights put on
    # the GPU as FP8 block GEMMs while placing: --fp8 where bf16 would not fit resident)
    text_encoder: str  # one of TEXT_ENCODER_PLACES
    vae_tiling: bool
    peak_gb: float | None  # estimated peak GPU memory (None: not on a GPU)
    budget_gb: float | None  # the memory the plan had to fit in (free, capped by --vram-budget)
    reason: str  # one line for the user: what was chosen and why
    fits: bool = True
    controlnet_gb: float = 0.0  # a --controlnet's weights (0: none), counted in peak_gb

    @property
    def label(self) -> str:
        te = {"gpu": "", "stream": ", text encoder streamed"}.get(self.text_encoder, "")
        return f"{self.mode} ({self.quant}{te}{', tiled VAE' if self.vae_tiling else ''})"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _weights_gb(quant: str) -> float:
    if quant == "fp8":
        return d.FP8_TRANSFORMER_GB
    return d.WEIGHTS_GB.get(quant, d.WEIGHTS_GB["q8"])  # an unknown --gguf file: assume Q8's size


def estimate_peak_gb(mode: str, quant: str, text_encoder: str, vae_tiling: bool, megapixels: float,
                     controlnet_gb: float = 0.0) -> float:
    """Estimated peak GPU memory of one image, weights included, headroom excluded. `controlnet_gb`: a ControlNet's
    weights (memory/controlnet.py places it: resident in full and sequential, with the transformer in model-offload,
    streamed in group-offload)."""
    dit_w = _weights_gb(quant)
    dit_act = d.DIT_ACTIVATIONS_GB_PER_MP * megapixels + (0.0 if quant in ("bf16", "fp8") else d.GGUF_DEQUANT_GB)
    if controlnet_gb:
        dit_act += d.CONTROLNET_HINTS_GB_PER_MP * megapixels
    decode = d.VAE_TILED_DECODE_GB if vae_tiling else d.VAE_DECODE_GB_PER_MP * megapixels
    if mode == "full":
        resident = dit_w + controlnet_gb + d.VAE_GB + (d.TEXT_ENCODER_GB if text_encoder == "gpu" else 0.0)
        te = d.TEXT_ENCODER_ACTIVATIONS_GB if text_encoder == "gpu" else d.TEXT_ENCODER_STREAM_GB
        return resident + max(te, dit_act, decode)
    if mode == "model-offload":  # one whole model on the GPU at a time (the denoiser: transformer + ControlNet)
        return max(d.TEXT_ENCODER_GB + d.TEXT_ENCODER_ACTIVATIONS_GB, dit_w + controlnet_gb + dit_act,
                   d.VAE_GB + decode)
    if mode == "group-offload":  # transformer and text encoder streamed; the small VAE stays
        stream = d.TRANSFORMER_STREAM_GB + min(controlnet_gb, d.CONTROLNET_STREAM_GB)
        return d.VAE_GB + max(d.TEXT_ENCODER_STREAM_GB, stream + dit_act, decode)
    if mode == "sequential":
        return d.SEQUENTIAL_GB + controlnet_gb + max(d.TEXT_ENCODER_ACTIVATIONS_GB, dit_act, decode)
    raise ValueError(f"unknown memory mode {mode!r}")


def _text_encoder_for(mode: str) -> tuple[str, ...]:
    return {"full": ("gpu", "stream"), "model-offload": ("offload",), "group-offload": ("stream",),
            "sequential": ("sequential",)}[mode]


def _options(modes, quants, megapixels, controlnet_gb=0.0):
    """(mode, quant, text_encoder, tiling, peak) for each combination, fastest first within a mode."""
    for mode in modes:
        for quant in quants:
            for te in _text_encoder_for(mode):
                for tiling in (False, True):
                    yield mode, quant, te, tiling, estimate_peak_gb(mode, quant, te, tiling, megapixels, controlnet_gb)


def _fmt(gb: float) -> str:
    return f"{gb:.1f} GB"


def choose(
    budget_gb: float | None,
    megapixels: float = d.PLAN_MEGAPIXELS,
    memory: str = "auto",
    quant: str | None = None,
    available: tuple[str, ...] = ("bf16",),
    capped: bool = False,
    fp8: bool = False,
    controlnet_gb: float = 0.0,
) -> Plan:
    """Pick the fastest option whose estimated peak (+ headroom) fits in `budget_gb`.

    budget_gb None means no GPU: a no-op plan. `quant` None lets auto pick among the precisions in
    `available` (those on disk); an explicit quant is kept. An explicit `memory` mode is kept; only
    the text encoder's placement and VAE tiling are then chosen. `fp8` (the user asked for --fp8 and FP8 runs
    here): under auto, where bf16 weights do not fit resident, place the transformer as FP8 (half the bytes)
    before a GGUF or group offload. `controlnet_gb`: a --controlnet's weights, counted in every option.
    """
    if memory not in d.MEMORY_CHOICES:
        raise InvalidParams(f"--memory must be one of {', '.join(d.MEMORY_CHOICES)}, got {memory!r}")
    if budget_gb is None:
        return Plan("full", quant or "bf16", "gpu", False, None, None,
                    "no GPU: everything stays on the CPU (--memory and --vram-budget have no effect)",
                    controlnet_gb=controlnet_gb)
    # Auto prefers: everything resident in bf16 > bf16 with the text encoder streamed > Q8 > Q4
    # resident > bf16 streamed by group offload > sequential. model-offload never beats the
    # streamed text encoder (same peak, slower), so auto leaves it to the user and to the retry.
    if memory == "auto" and quant is None:
        quants = tuple(q for q in d.AUTO_QUANTS if q in available) or ("bf16",)
        ladder = [(m, q) for m, q in [("full", q) for q in quants] + [("group-offload", "bf16"), ("sequential", "bf16")]]
    elif memory == "auto":
        ladder = [(m, quant) for m in ("full", "group-offload", "sequential")]
    else:
        ladder = [(memory, quant or "bf16")]
    if fp8 and memory == "auto" and quant in (None, "bf16") and ("full", "bf16") in ladder:
        ladder.insert(ladder.index(("full", "bf16")) + 1, ("full", "fp8"))
    room = budget_gb - d.MEMORY_HEADROOM_GB
    tried: list[str] = []
    control = f" with the {controlnet_gb:.1f} GB ControlNet" if controlnet_gb else ""
    for mode, q in ladder:
        for _, _, te, tiling, peak in _options([mode], [q], megapixels, controlnet_gb):
            plan = Plan(mode, q, te, tiling, round(peak, 2), round(budget_gb, 2), "", controlnet_gb=controlnet_gb)
            if peak <= room:
                why = f"{plan.label}: needs ~{_fmt(peak + d.MEMORY_HEADROOM_GB)}{control} of the {_fmt(budget_gb)} " \
                      f"{'allowed' if capped else 'free'} for {megapixels:g} MP"
                if q == "fp8":
                    why += (f"; --fp8: the transformer goes to the GPU as FP8 block GEMMs while placing "
                            f"({d.FP8_TRANSFORMER_GB:.1f} GB instead of {d.WEIGHTS_GB['bf16']:.1f} GB bf16; the GEMMs the "
                            f"policy keeps bf16 add theirs), calibrated first with it streamed")
                if tried:
                    why += f"; faster options need more ({'; '.join(tried[:3])})"
                missing = [q2 for q2 in d.AUTO_QUANTS if q2 not in available and q2 != "bf16"]
                if memory == "auto" and quant is None and mode != "full" and missing:
                    why += (f"; a {missing[0]} GGUF on disk could run resident (hf download {d.GGUF_REPO} "
                            f"{d.GGUF_FILES[missing[0]]})")
                return dataclasses.replace(plan, reason=why)
            if not tiling:
                tried.append(f"{plan.label} ~{_fmt(peak + d.MEMORY_HEADROOM_GB)}")
    # Nothing fits: run the most frugal option and say so; the retry path and the error take over. (That is the
    # ladder's last, sequential, unless a ControlNet, resident there, makes group offload the smaller one.)
    def frugal(mode_quant):
        mode, q = mode_quant
        return estimate_peak_gb(mode, q, _text_encoder_for(mode)[-1], True, megapixels, controlnet_gb)

    mode, q = min(reversed(ladder), key=frugal)
    te = _text_encoder_for(mode)[-1]
    peak = frugal((mode, q))
    return Plan(mode, q, te, True, round(peak, 2), round(budget_gb, 2),
                f"{mode} ({q}): even this needs ~{_fmt(peak + d.MEMORY_HEADROOM_GB)}{control}, more than the "
                f"{_fmt(budget_gb)} {'allowed' if capped else 'free'}: it may run out of memory; "
                "try a smaller image" + ("" if q in ("q4", "q2") else " or --quant q4"), fits=False,
                controlnet_gb=controlnet_gb)


def tiny_plan(budget_gb: float, memory: str = "auto", quant: str | None = None) -> Plan:
    """The tiny model on a GPU: it fits anywhere, so auto is full; a mode the user named is kept (a GPU test of
    that mode runs in seconds). No estimates: they are the real model's."""
    mode = "full" if memory == "auto" else memory
    why = "full: the tiny model fits anywhere" if memory == "auto" else f"{mode}: as asked (--memory {mode})"
    return Plan(mode, quant or "bf16", _text_encoder_for(mode)[0], False, 0.0, round(budget_gb, 2), why)


def next_lower(plan: Plan, megapixels: float = d.PLAN_MEGAPIXELS) -> Plan | None:
    """One step down after running out of memory, keeping the precision (changing it means
    reloading weights): of the steps whose estimated peak is clearly lower (VAE tiling first if it
    was off, then the modes below), the first that fits the budget. None at the bottom."""
    rungs = [(m, te) for m in d.MEMORY_MODES for te in _text_encoder_for(m)]
    here = rungs.index((plan.mode, plan.text_encoder))
    cn = plan.controlnet_gb
    current = estimate_peak_gb(plan.mode, plan.quant, plan.text_encoder, plan.vae_tiling, megapixels, cn)
    steps = ([rungs[here]] if not plan.vae_tiling else []) + rungs[here + 1:]
    lower = []
    for mode, te in steps:
        peak = estimate_peak_gb(mode, plan.quant, te, True, megapixels, cn)
        if peak <= current - 0.5:
            lower.append(Plan(mode, plan.quant, te, True, round(peak, 2), plan.budget_gb,
                              f"{mode} after running out of memory in {plan.mode}", controlnet_gb=cn))
    # the first step down that the estimates say fits (one retry only: make it count), else the lowest
    for step in lower:
        if plan.budget_gb is None or step.peak_gb + d.MEMORY_HEADROOM_GB <= plan.budget_gb:
            return step
    return lower[-1] if lower else None


def next_option_hint(plan: Plan) -> str:
    """What to try after the lowest mode failed too, for the error message."""
    nxt = next_lower(plan)
    if nxt is not None:
        return f"--memory {nxt.mode}"
    if plan.quant in ("bf16", "q8", "gguf"):
        return "--quant q4 (or a smaller image)"
    return "a smaller image, or a card with more free memory"
