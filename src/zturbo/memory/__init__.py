"""GPU memory policy and placement: choose precision and offload mode (plan), carry it out with
diffusers (place), and read what the machine has (probe). zturbo.loading.load() plans and places;
Engine.generate calls the Placement's prepare() before an image and step_down() after an
out-of-memory error.

    plan.py        (free GB, megapixels, precisions on disk, ControlNet GB) -> Plan      pure, tested on CPU
    place.py       Plan -> diffusers offload hooks / VAE tiling; reset()  for the retry
    controlnet.py  a --controlnet placed for each mode (it calls the transformer's modules outside its forward)
    probe.py  free GPU memory within --vram-budget, the allocator cap, HF cache look-up
"""

from __future__ import annotations

from .place import Placement, apply, reset, set_vae_tiling
from .plan import Plan, choose, estimate_peak_gb, next_lower, next_option_hint, tiny_plan
from .probe import available_quants, cap_allocator, free_gb

__all__ = [
    "Placement", "Plan", "apply", "available_quants", "cap_allocator", "choose", "estimate_peak_gb", "free_gb",
    "next_lower", "next_option_hint", "reset", "set_vae_tiling", "tiny_plan",
]
