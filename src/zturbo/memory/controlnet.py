"""A ControlNet under each memory mode.

diffusers' ZImageControlNetModel owns only its control blocks; the pipeline's constructor links the transformer's
embedders, refiners and pad tokens into it (ZImageControlNetModel.from_transformer, SHARED below), and at every step
its forward runs before the transformer's, calling those shared modules itself. So the offload modes, which move the
transformer's weights around the transformer's own forward, need three things here:

  placement   only the ControlNet's own blocks: it is unlinked first (SHARED set to None; the next control
              pipeline links it again), so that its hooks and moves never reach the transformer's modules
  group       its own blocks streamed like the transformer's (one block at a time, prefetched); the transformer's
              shared blocks (refiners, cap_embedder's layers) carry their own hooks and onload wherever called, but
              its unmatched modules (UNMATCHED) only load around the transformer's forward: the ControlNet gets
              small copies of those, resident on the GPU (resident_copies, after each link)
  model       the transformer's accelerate hook is run before the ControlNet (so that it is on the GPU when the
              ControlNet calls into it), the ControlNet's blocks are moved with it, and both go back to the CPU
              after the denoising loop (release): the denoiser, ControlNet included, is one "model"
  sequential  the transformer's leaf modules onload wherever called, but its own parameters (the pad tokens) wait
              on the meta device for its forward: the ControlNet gets resident copies of those, taken at placement
              before the transformer is offloaded; the ControlNet itself stays resident
"""

from __future__ import annotations

import copy
import itertools

import torch

# What ZImageControlNetModel.from_transformer links (diffusers 0.42.1); its forward uses all nine.
SHARED = ("t_scale", "t_embedder", "all_x_embedder", "cap_embedder", "rope_embedder", "noise_refiner",
          "context_refiner", "x_pad_token", "cap_pad_token")
# Of those, what a block-level group offload leaves in the transformer's "unmatched" group (not a ModuleList or
# Sequential child): onloaded only by the hook on the transformer's own forward. cap_embedder is a Sequential (its
# layers get their own hooks), the refiners are ModuleLists, rope_embedder holds no weights, t_scale is a float.
UNMATCHED = ("t_embedder", "all_x_embedder", "x_pad_token", "cap_pad_token")
PADS = ("x_pad_token", "cap_pad_token")  # the transformer's own parameters: accelerate's sequential offload keeps them

# where each mode keeps the ControlNet's weights, for the load log line (README "ControlNet")
PLACES = {
    "full": "resident on the GPU",
    "model-offload": "moved to the GPU with the transformer for the denoising steps, back to the CPU after them",
    "group-offload": "streamed block by block like the transformer, with its own GPU copies of the transformer's "
                     "embedders and pad tokens (~20 MB)",
    "sequential": "resident on the GPU (only the base model is streamed), with copies of the transformer's pad tokens",
}

_MODEL_OFFLOAD_HOOK = "_zturbo_model_offload"  # the torch pre-hook handle placed under model offload
_RESIDENT = "_zturbo_resident"  # sequential: {name: copy on the GPU} of PADS, taken at placement


def unlink(controlnet) -> None:
    """Drop the links to the transformer's modules (the next control pipeline makes them again)."""
    for name in SHARED:
        setattr(controlnet, name, None)


def own_modules(controlnet) -> list[torch.nn.Module]:
    """The ControlNet's own children (control blocks, control embedder), never the linked transformer modules."""
    return [m for name, m in controlnet.named_children() if name not in SHARED]


def place(controlnet, transformer, mode: str, device: torch.device, group_offload) -> None:
    """Place the ControlNet's own blocks for `mode`, BEFORE the transformer is placed (sequential offload puts its
    weights on the meta device); `group_offload` is place.py's, so that both models stream the same way."""
    unlink(controlnet)
    setattr(controlnet, _RESIDENT, {})
    if mode in ("full", "sequential"):  # resident (sequential: see README "ControlNet")
        controlnet.to(device)
        if mode == "sequential":
            setattr(controlnet, _RESIDENT, {name: resident_copy(getattr(transformer, name), device) for name in PADS})
    elif mode == "group-offload":
        group_offload(controlnet, device)  # unlinked: its hooks cover its own blocks only
    elif mode == "model-offload":
        controlnet.to("cpu")

        def onload(module, args):
            # the transformer's accelerate CpuOffload, as its own forward would run it: the transformer to the GPU
            # (and the text encoder off it); looked up per call, maybe_free_model_hooks makes a new one per image
            hook = getattr(transformer, "_hf_hook", None)
            if hook is not None:
                hook.pre_forward(transformer)
            for m in own_modules(module):
                m.to(device)  # a no-op after the first step

        # a torch pre-hook, not accelerate's CpuOffload: that one checks the first parameter only, which is the
        # linked x_pad_token (already on the GPU with the transformer), and would never move the control blocks
        setattr(controlnet, _MODEL_OFFLOAD_HOOK, controlnet.register_forward_pre_hook(onload))
    else:
        raise ValueError(f"unknown memory mode {mode!r}")


def release(controlnet) -> None:
    """After a control call under model offload: the ControlNet's own blocks back to the CPU, as the transformer
    goes back there (the pipeline's maybe_free_model_hooks). A no-op in the other modes."""
    if getattr(controlnet, _MODEL_OFFLOAD_HOOK, None) is not None:
        for m in own_modules(controlnet):
            m.to("cpu")


def remove(controlnet, remove_group_hooks) -> None:
    """Undo place(): hooks off its own blocks (`remove_group_hooks` is place.py's), all of it on the CPU."""
    unlink(controlnet)
    setattr(controlnet, _RESIDENT, {})
    handle = getattr(controlnet, _MODEL_OFFLOAD_HOOK, None)
    if handle is not None:
        handle.remove()
        setattr(controlnet, _MODEL_OFFLOAD_HOOK, None)
    remove_group_hooks(controlnet)
    controlnet.to("cpu")


def _device_copy(tensor: torch.Tensor, device) -> torch.Tensor:
    data = tensor.detach().to(device, copy=True)
    if not isinstance(tensor, torch.nn.Parameter):
        return data
    if hasattr(tensor, "quant_type"):  # diffusers' GGUFParameter: deepcopy cannot rebuild it (quant_type is lost)
        return type(tensor)(data, requires_grad=False, quant_type=tensor.quant_type)
    return torch.nn.Parameter(data, requires_grad=False)


def resident_copy(obj, device):
    """A copy of a module or parameter with its tensors on `device` (made there, the original left alone)."""
    if isinstance(obj, torch.Tensor):
        return _device_copy(obj, device)
    memo = {id(t): _device_copy(t, device) for t in itertools.chain(obj.parameters(), obj.buffers())}
    return copy.deepcopy(obj, memo)


def relink(controlnet, transformer, mode: str, device: torch.device) -> None:
    """After the control pipeline linked the ControlNet to the transformer: under group offload, its own copies of
    the UNMATCHED modules on the GPU (~20 MB at full size; made per call from the transformer's weights on the CPU,
    so that they follow any change to them); under sequential offload, the pad-token copies taken at placement."""
    if mode == "group-offload":
        for name in UNMATCHED:
            setattr(controlnet, name, resident_copy(getattr(transformer, name), device))
    for name, value in (getattr(controlnet, _RESIDENT, None) or {}).items():
        setattr(controlnet, name, value)
