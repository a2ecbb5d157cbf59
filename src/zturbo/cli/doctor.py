"""zturbo doctor: what this machine can run, and what `--memory auto` would do on it."""

from __future__ import annotations

import importlib.util
import json
import platform
import sys
from pathlib import Path

from .. import defaults

HELP = "check the GPU, free memory, weights on disk, optional speed-ups and versions"
DESCRIPTION = """Check this machine: the GPU and its free memory, what --memory auto would choose for a
1 MP image (and on common card sizes), which Z-Image-Turbo weights are in the Hugging Face cache,
which optional speed-ups are available, and the versions of the libraries that matter.

examples:
  zturbo doctor
  zturbo doctor --json"""

CARD_SIZES_GB = (8, 12, 16, 24, 48, 80)
# import name -> what it offers (diffusers' attention backends and the flash-attention packages)
ATTENTION_PACKAGES = {
    "flash_attn": "FlashAttention 2 (diffusers backend 'flash')",
    "flash_attn_interface": "FlashAttention 3, Hopper (diffusers backend '_flash_3')",
    "sageattention": "SageAttention (diffusers backend 'sage')",
    "xformers": "xFormers memory-efficient attention",
    "kernels": "Hugging Face kernels hub (prebuilt attention / GGUF kernels)",
}


def add_arguments(p) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--model", default=defaults.MODEL_ID, help=f"hub id whose cache to look for (default {defaults.MODEL_ID})")
    p.add_argument("--vram-budget", type=float, default=None, metavar="GB", help="plan as if only this much were free")


def _versions() -> dict:
    from ..machine import versions  # the one list every recipe records, plus the extras doctor shows

    return {"platform": platform.platform(terse=True), **versions(extra=True)}


def _gpu() -> dict | None:
    import torch

    if not torch.cuda.is_available():
        return None
    i = torch.cuda.current_device()
    free, total = torch.cuda.mem_get_info(i)
    cap = torch.cuda.get_device_capability(i)
    return {"name": torch.cuda.get_device_name(i), "count": torch.cuda.device_count(),
            "capability": f"sm_{cap[0]}{cap[1]}", "total_gb": round(total / 1e9, 2), "free_gb": round(free / 1e9, 2),
            "cuda": torch.version.cuda, "bf16": torch.cuda.is_bf16_supported()}


def _weights(model: str) -> dict:
    """The hub repo's snapshots and the GGUF files in the Hugging Face cache (no network)."""
    from huggingface_hub import constants, scan_cache_dir

    out = {"hub_repo": {"repo": model, "snapshots": []}, "gguf": {}, "cache": None}
    try:
        info = scan_cache_dir(constants.HF_HUB_CACHE)  # read now (scan_cache_dir's default is bound at import)
    except Exception as exc:  # no cache folder yet
        out["cache"] = f"no Hugging Face cache ({type(exc).__name__})"
        return out
    out["cache"] = str(getattr(info, "cache_dir", "")) or None
    wanted = {v: k for k, v in defaults.GGUF_FILES.items()}
    for repo in info.repos:
        if repo.repo_id == model:
            for rev in repo.revisions:
                out["hub_repo"]["snapshots"].append(
                    {"revision": rev.commit_hash[:12], "gb": round(rev.size_on_disk / 1e9, 2),
                     "files": len(rev.files), "path": str(rev.snapshot_path),
                     # a GGUF run caches only the configs: bf16 is on disk once the transformer's weights are
                     "bf16_weights": any(Path(f.file_path).parent.name == "transformer"
                                         and f.file_name.endswith(".safetensors") for f in rev.files)})
        elif repo.repo_id == defaults.GGUF_REPO:
            for rev in repo.revisions:
                for f in rev.files:
                    if f.file_name in wanted:
                        out["gguf"][wanted[f.file_name]] = {"file": f.file_name, "gb": round(f.size_on_disk / 1e9, 2),
                                                            "path": str(f.file_path)}
    return out


def _speedups(gpu: dict | None) -> dict:
    import torch

    out = {}
    triton = importlib.util.find_spec("triton") is not None
    out["torch.compile"] = ("available (inductor + triton)" if triton and gpu else
                           "needs a CUDA GPU and triton" if not triton else "available, but no GPU here")
    min_cap = getattr(defaults, "FP8_MIN_CAPABILITY", (8, 9))
    if gpu:
        cap = torch.cuda.get_device_capability()
        out["fp8"] = (f"yes: {gpu['capability']} has FP8 tensor cores" if cap >= tuple(min_cap)
                      else f"no: {gpu['capability']} < sm_{min_cap[0]}{min_cap[1]}")
    else:
        out["fp8"] = "no GPU"
    for name, what in ATTENTION_PACKAGES.items():
        out[name] = f"installed: {what}" if importlib.util.find_spec(name) is not None else f"not installed ({what})"
    out["sdpa"] = "always: torch scaled_dot_product_attention (flash / memory-efficient kernels built into torch)"
    return out


def _on_disk(model: str, weights: dict) -> list[str]:
    """The precisions whose weights are on this disk now (auto's candidates also count bf16 without them:
    the hub repo is needed anyway, so it is downloaded on first use)."""
    if model == defaults.TINY_MODEL:
        return list(defaults.QUANTS)  # built in memory / written on the fly
    bf16 = (Path(model).expanduser() / "model_index.json").is_file() or \
        any(s["bf16_weights"] for s in weights["hub_repo"]["snapshots"])
    return ["bf16"] * bf16 + [q for q in defaults.GGUF_FILES if q in weights["gguf"]]


def _auto(model: str, gpu: dict | None, vram_budget: float | None, weights: dict) -> dict:
    from ..memory import available_quants, choose

    quants = available_quants(model)
    out = {"precisions_on_disk": _on_disk(model, weights), "candidates": list(quants)}
    if gpu:
        budget = gpu["free_gb"] if vram_budget is None else min(gpu["free_gb"], vram_budget)
        out["here_1mp"] = choose(budget, 1.0, "auto", None, quants, capped=vram_budget is not None).reason
    else:
        out["here_1mp"] = "no GPU: zturbo runs on the CPU (slow: minutes per image at 1 MP)"
    out["cards_1mp"] = {f"{gb} GB": choose(gb - 0.5, 1.0, "auto", None, quants).label for gb in CARD_SIZES_GB}
    return out


def collect(model: str = defaults.MODEL_ID, vram_budget: float | None = None) -> dict:
    gpu, weights = _gpu(), _weights(model)
    return {"gpu": gpu, "auto": _auto(model, gpu, vram_budget, weights), "weights": weights,
            "speedups": _speedups(gpu), "versions": _versions()}


def _print(r: dict) -> None:
    g = r["gpu"]
    print("GPU")
    if g:
        print(f"  {g['name']} ({g['capability']}, CUDA {g['cuda']}, {g['count']} visible): "
              f"{g['free_gb']:.1f} of {g['total_gb']:.1f} GB free")
    else:
        print("  no CUDA GPU visible to torch")
    a = r["auto"]
    print("memory auto, 1024x1024")
    print(f"  here: {a['here_1mp']}")
    print(f"  precisions on disk: {', '.join(a['precisions_on_disk']) or 'none'}"
          + ("" if "bf16" in a["precisions_on_disk"] else " (auto plans for bf16 too: downloaded on first use)"))
    print("  on a card with (about 0.5 GB taken by the CUDA context):")
    for size, label in a["cards_1mp"].items():
        print(f"    {size:>6}: {label}")
    w = r["weights"]
    print(f"weights (Hugging Face cache: {w['cache']})")
    snaps = w["hub_repo"]["snapshots"]
    if snaps:
        for s in snaps:
            print(f"  {w['hub_repo']['repo']} @ {s['revision']}: {s['files']} files, {s['gb']:.1f} GB")
    else:
        print(f"  {w['hub_repo']['repo']}: not cached (hf download {w['hub_repo']['repo']})")
    for quant, filename in defaults.GGUF_FILES.items():
        hit = w["gguf"].get(quant)
        print(f"  {quant}: {filename} " + (f"{hit['gb']:.2f} GB" if hit else f"not cached (hf download {defaults.GGUF_REPO} {filename})"))
    print("optional speed-ups")
    for k, v in r["speedups"].items():
        print(f"  {k}: {v}")
    print("versions")
    print("  " + ", ".join(f"{k} {v or 'not installed'}" for k, v in r["versions"].items()))


def run(args) -> int:
    from ..errors import InvalidParams

    if args.vram_budget is not None and args.vram_budget <= 0:
        raise InvalidParams(f"--vram-budget must be a positive number of GB, got {args.vram_budget:g}")
    report = collect(args.model, args.vram_budget)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        _print(report)
    return 0
