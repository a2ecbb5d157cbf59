"""The machine zturbo runs on: which torch device, waiting for it, its name, and the library versions
that every recipe, report and benchmark records. One place for each, so they cannot disagree."""

from __future__ import annotations

import platform
from importlib import metadata

import torch

from .errors import InvalidParams

# what a recipe records; doctor and benchmarks add their extras to the same list
VERSIONED = ("zturbo", "torch", "diffusers", "transformers", "gguf")
EXTRA = ("accelerate", "huggingface_hub", "triton", "spandrel")


def resolve_device(device: str | torch.device | None, local_rank: int | None = None) -> torch.device:
    """None/"auto" -> the GPU if there is one (with `local_rank`, one process per GPU: cuda:RANK mod count),
    else the CPU; anything else must be a device torch has here."""
    if device is None or str(device) in ("", "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        return torch.device("cuda" if local_rank is None else f"cuda:{local_rank % torch.cuda.device_count()}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InvalidParams(f"device {device!r} is not a torch device (e.g. cuda, cuda:1, cpu)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidParams(f"device {str(device)!r} asked for, but torch sees no CUDA GPU here; use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InvalidParams(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                                f"cuda:0..cuda:{torch.cuda.device_count() - 1}")
    return dev


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a CUDA timing without it measures the launch, not the work)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.machine()})"


def versions(extra: bool = False) -> dict[str, str | None]:
    """python and the libraries that decide the pixels (None: not installed); `extra` adds the rest."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in VERSIONED + (EXTRA if extra else ()):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out
