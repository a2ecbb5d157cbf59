"""What the machine has: free GPU memory (capped by --vram-budget) and which precisions are on disk."""

from __future__ import annotations

import torch

from .. import defaults


def free_gb(device: torch.device, vram_budget_gb: float | None = None) -> float | None:
    """GB this process may still use on `device`: free memory, within the budget; None off a GPU. Reads only."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    if vram_budget_gb is None:
        return free / 1e9
    used = torch.cuda.memory_reserved(device) / 1e9
    return max(0.0, min(free / 1e9, vram_budget_gb - used))


def cap_allocator(device: torch.device, vram_budget_gb: float) -> None:
    """Cap torch's caching allocator on `device` at the budget (set_per_process_memory_fraction), so that
    --vram-budget holds for the whole run, not only for the plan. A no-op off a GPU."""
    if device.type != "cuda":
        return
    _free, total = torch.cuda.mem_get_info(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    torch.cuda.set_per_process_memory_fraction(min(1.0, vram_budget_gb * 1e9 / total), index)


def available_quants(model: str) -> tuple[str, ...]:
    """bf16 always (the hub repo or folder is needed anyway); a GGUF precision only when its file is
    already in the Hugging Face cache: auto never starts a multi-GB download on its own."""
    if model == defaults.TINY_MODEL:
        return defaults.QUANTS  # written on the fly
    out = ["bf16"]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return tuple(out)
    for quant, filename in defaults.GGUF_FILES.items():
        try:
            hit = try_to_load_from_cache(defaults.GGUF_REPO, filename)
        except Exception:
            hit = None
        if isinstance(hit, str):
            out.append(quant)
    return tuple(out)
