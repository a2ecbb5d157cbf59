"""Carry out a Plan with diffusers' own offloading, and undo it for the out-of-memory retry.

Nothing here moves weights by hand except whole-module `.to(device)` for what stays resident:
model offload, group offload (block by block, prefetched on a CUDA stream) and sequential offload
are diffusers' (backed by accelerate), VAE tiling is the VAE's own.
"""

from __future__ import annotations

import gc
import logging

import torch

from .. import defaults
from . import controlnet as control
from .plan import Plan, choose, next_lower

log = logging.getLogger("zturbo")

_GROUP_HOOKS = ("group_offloading", "layer_execution_tracker", "lazy_prefetch_group_offloading")


def _modules(pipe) -> dict[str, torch.nn.Module]:
    return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}


def _group_offload(module: torch.nn.Module, device: torch.device) -> None:
    """Stream `module` to the GPU one block at a time, the next block prefetched on a side stream."""
    from diffusers.hooks import apply_group_offloading

    apply_group_offloading(
        module, onload_device=device, offload_device=torch.device("cpu"), offload_type="block_level",
        num_blocks_per_group=1, use_stream=device.type == "cuda",
    )


def set_vae_tiling(vae, on: bool) -> None:
    """diffusers tiles only above tile_sample_min_size, which the Flux VAE sets to 1024 px: use
    smaller tiles so that tiling also helps at 1 MP."""
    if on:
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
        vae.tile_sample_min_size = defaults.VAE_TILE_PX
        vae.tile_latent_min_size = defaults.VAE_TILE_PX // scale
        vae.enable_tiling()
    else:
        vae.disable_tiling()


def _remove_group_hooks(module: torch.nn.Module) -> None:
    for sub in module.modules():
        registry = getattr(sub, "_diffusers_hook", None)
        if registry is not None:
            for name in _GROUP_HOOKS:
                if registry.get_hook(name) is not None:
                    registry.remove_hook(name, recurse=False)


def reset(pipe, controlnet=None) -> None:
    """Remove every offload hook and bring every model (and the ControlNet, if given) back to the CPU."""
    if controlnet is not None:
        control.remove(controlnet, _remove_group_hooks)
    pipe.remove_all_hooks()  # accelerate's: model and sequential offload
    for module in _modules(pipe).values():
        _remove_group_hooks(module)
        module.to("cpu")
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def apply(pipe, plan: Plan, device: torch.device, controlnet=None) -> None:
    """Place a pipeline whose models are on the CPU (or were reset) according to `plan`, with its ControlNet."""
    if controlnet is not None:  # first: it may copy weights of the transformer that the placing moves away
        control.place(controlnet, pipe.transformer, plan.mode if device.type == "cuda" else "full", device,
                      _group_offload)
    if device.type != "cuda":
        pipe.to(device)
    elif plan.mode == "full":
        pipe.transformer.to(device)
        pipe.vae.to(device)
        if plan.text_encoder == "gpu":
            pipe.text_encoder.to(device)
        else:  # used once per new prompt, then freed: the engine caches the embeddings
            _group_offload(pipe.text_encoder, device)
    elif plan.mode == "model-offload":
        pipe.enable_model_cpu_offload(device=device)
    elif plan.mode == "group-offload":
        _group_offload(pipe.transformer, device)
        _group_offload(pipe.text_encoder, device)
        pipe.vae.to(device)  # 0.17 GB: not worth streaming
    elif plan.mode == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        raise ValueError(f"unknown memory mode {plan.mode!r}")
    set_vae_tiling(pipe.vae, plan.vae_tiling)


class Placement:
    """The live memory state of one engine: its plan, the budget it was made for, and the moves
    that re-plan for a larger image or step down after running out of memory."""

    def __init__(self, pipe, device: torch.device, plan: Plan, requested: str = "auto", capped: bool = False,
                 replan: bool = True, controlnet=None):
        self.pipe, self.device, self.plan = pipe, device, plan
        self.requested = requested  # "auto" or the mode the user named
        self.capped = capped
        self.replan = replan  # False for the tiny model: the estimates are the real model's
        self.controlnet = controlnet  # placed and reset with the pipeline (memory/controlnet.py)

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda" and self.plan.budget_gb is not None

    def apply(self, plan: Plan | None = None) -> None:
        if plan is not None and plan != self.plan:
            reset(self.pipe, self.controlnet)
            self.plan = plan
        apply(self.pipe, self.plan, self.device, self.controlnet)

    def link_controlnet(self) -> None:
        """After a control pipeline linked the ControlNet to the transformer: the resident copies its mode needs."""
        if self.controlnet is not None and self.on_gpu:
            control.relink(self.controlnet, self.pipe.transformer, self.plan.mode, self.device)

    def release_controlnet(self) -> None:
        """After a control pipeline's call: under model offload, the ControlNet leaves the GPU with the transformer."""
        if self.controlnet is not None:
            control.release(self.controlnet)

    def prepare(self, megapixels: float) -> list[str]:
        """Before an image: tiling on when its decode would not fit; under auto, a lower mode when
        the image is too large for the current one. Never steps up (re-placing costs seconds)."""
        if not self.on_gpu or not self.replan:
            return []
        want = choose(self.plan.budget_gb, megapixels, self.requested if self.requested != "auto" else "auto",
                      self.plan.quant, (self.plan.quant,), self.capped, controlnet_gb=self.plan.controlnet_gb)
        notes = []
        order = defaults.MEMORY_MODES
        if self.requested == "auto" and order.index(want.mode) > order.index(self.plan.mode):
            notes.append(f"{megapixels:.2f} MP needs more memory than {self.plan.label}: switched to {want.label}")
            self.apply(want)
        elif want.vae_tiling and not self.plan.vae_tiling:
            set_vae_tiling(self.pipe.vae, True)
            self.plan = Plan(**{**self.plan.to_dict(), "vae_tiling": True})
            notes.append(f"tiled VAE decoding switched on for {megapixels:.2f} MP")
        return notes

    def try_apply(self, plan: Plan | None = None) -> bool:
        """apply(); False (memory freed, models back on the CPU) if the GPU ran out."""
        try:
            self.apply(plan)
            return True
        except torch.cuda.OutOfMemoryError:
            pass
        reset(self.pipe, self.controlnet)  # outside the except: the traceback no longer pins the tensors
        return False

    def step_down(self, megapixels: float) -> Plan | None:
        """After an out-of-memory error: the next lower mode, applied; None if there is none."""
        if not self.on_gpu:
            return None
        lower = next_lower(self.plan, megapixels)
        if lower is None:
            return None
        if self.try_apply(lower):
            return lower
        # not even that could be placed: leave the engine usable (a server goes on) in the lowest mode
        self.try_apply(Plan("sequential", self.plan.quant, "sequential", True, None, self.plan.budget_gb,
                            "sequential after running out of memory while placing",
                            controlnet_gb=self.plan.controlnet_gb))
        return None
