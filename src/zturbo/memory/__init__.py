"""GPU memory: choose precision and offload mode (plan), carry it out with diffusers (place), and
read what the machine has (probe). Engine.load calls plan_load(); Engine.generate calls the
Placement's prepare() before an image and step_down() after an out-of-memory error.

    plan.py   (free GB, megapixels, precisions on disk) -> Plan      pure, tested on CPU
    place.py  Plan -> diffusers offload hooks / VAE tiling; reset()  for the retry
    probe.py  torch.cuda.mem_get_info, --vram-budget cap, HF cache look-up
"""

from __future__ import annotations

import dataclasses

import torch

from .. import defaults
from .place import Placement, apply, reset, set_vae_tiling
from .plan import Plan, choose, estimate_peak_gb, next_lower, next_option_hint
from .probe import available_quants, budget_gb

__all__ = [
    "Placement", "Plan", "apply", "available_quants", "budget_gb", "choose", "estimate_peak_gb",
    "next_lower", "next_option_hint", "plan_load", "reset", "set_vae_tiling",
]


def plan_load(
    model: str,
    quant: str | None,
    gguf,
    device: torch.device,
    memory: str = "auto",
    vram_budget_gb: float | None = None,
    megapixels: float = defaults.PLAN_MEGAPIXELS,
) -> Plan:
    """The plan for loading `model` on `device`, from what is free now."""
    budget = budget_gb(device, vram_budget_gb)
    if budget is not None and model == defaults.TINY_MODEL:
        return Plan("full", quant or "bf16", "gpu", False, 0.0, round(budget, 2),
                    "full: the tiny model fits anywhere")
    if gguf:
        quant = "gguf"
    return choose(budget, megapixels, memory, quant, available_quants(model), capped=vram_budget_gb is not None)


def load_placed(model, quant, gguf, device, dtype, memory: str = "auto", vram_budget_gb: float | None = None):
    """load_pipeline + the plan carried out: returns (LoadedModel, Placement) and logs the choice.

    The pipeline loads on the CPU (where from_pretrained puts weights anyway) and is then placed, so
    nothing larger than the plan lands on the GPU; if placing runs out of memory, one step lower.
    """
    import logging

    from ..models.loader import load_pipeline, resolve_device

    dev = resolve_device(str(device) if device is not None else None)
    plan = plan_load(model, quant, gguf, dev, memory, vram_budget_gb)
    load_quant = "bf16" if (gguf or plan.quant == "gguf") else plan.quant
    loaded = load_pipeline(model=model, quant=load_quant, gguf=gguf,
                           device="cpu" if dev.type == "cuda" else dev, dtype=dtype)
    placement = Placement(loaded.pipe, dev, plan, memory, capped=vram_budget_gb is not None,
                          replan=model != defaults.TINY_MODEL)
    if dev.type == "cuda":
        if not placement.try_apply():
            lower = next_lower(placement.plan)
            if lower is None or not placement.try_apply(lower):
                from ..errors import OutOfMemory

                raise OutOfMemory(f"out of GPU memory while placing the model in {plan.label}; "
                                  f"try {next_option_hint(lower or plan)}, or free GPU memory")
            placement.plan = dataclasses.replace(lower, reason=f"{lower.label}: {plan.label} ran out of memory "
                                                 f"while loading ({plan.reason})")
    logging.getLogger("zturbo").info("memory: %s", placement.plan.reason)
    return loaded, placement

