"""Tiny LoRA files written in the layouts trainers use, and the weights a hand merge of each gives."""

import torch
from safetensors.torch import save_file

RANK = 4
# (module of the tiny transformer, in, out): an attention projection and an FFN projection
TARGETS = [("layers.0.attention.to_q", 256, 256), ("layers.1.feed_forward.w1", 256, 682)]


def factors(seed: int, targets=TARGETS, rank: int = RANK) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module -> (A: rank x in, B: out x rank), random and deterministic."""
    g = torch.Generator().manual_seed(seed)
    return {m: (torch.randn(rank, i, generator=g) * 0.05, torch.randn(o, rank, generator=g) * 0.05)
            for m, i, o in targets}


def kohya_name(module: str) -> str:
    return "lora_unet_" + module.replace(".", "_")


def write_lora(path, fmt: str, seed: int = 0, alpha: float = 8.0, targets=TARGETS) -> dict[str, torch.Tensor]:
    """Write a LoRA in `fmt`; return module -> the delta its format defines (before the user's scale)."""
    f = factors(seed, targets)
    sd, meta = {}, None
    deltas = {m: (alpha / RANK) * B @ A for m, (A, B) in f.items()}
    for m, (A, B) in f.items():
        if fmt == "diffusers":  # pipe.save_lora_weights' layout: alpha in the header metadata
            sd[f"transformer.{m}.lora_A.weight"], sd[f"transformer.{m}.lora_B.weight"] = A, B
        elif fmt == "kohya":  # sd-scripts / ComfyUI export: lora_down/up + alpha per module
            k = kohya_name(m)
            sd[f"{k}.lora_down.weight"], sd[f"{k}.lora_up.weight"], sd[f"{k}.alpha"] = A, B, torch.tensor(alpha)
        elif fmt == "ai-toolkit":  # ComfyUI's diffusion_model.* prefix with peft names and alpha
            sd[f"diffusion_model.{m}.lora_A.weight"], sd[f"diffusion_model.{m}.lora_B.weight"] = A, B
            sd[f"diffusion_model.{m}.alpha"] = torch.tensor(alpha)
        elif fmt == "diffsynth":  # peft's adapter name left in, no prefix, no alpha (scale 1)
            sd[f"{m}.lora_A.default.weight"], sd[f"{m}.lora_B.default.weight"] = A, B
            deltas[m] = B @ A
        else:
            raise ValueError(fmt)
    if fmt == "diffusers":
        import json

        meta = {"lora_adapter_metadata": json.dumps({"transformer.r": RANK, "transformer.lora_alpha": alpha,
                                                     "transformer.target_modules": [m for m in f]})}
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=meta)
    return deltas


def write_fused_qkv_kohya(path, seed: int = 0, alpha: float = 2.0) -> dict[str, torch.Tensor]:
    """kohya over Z-Image's original module tree: one fused `attention.qkv` LoRA, split by diffusers."""
    g = torch.Generator().manual_seed(seed)
    A, B = torch.randn(RANK, 256, generator=g) * 0.05, torch.randn(3 * 256, RANK, generator=g) * 0.05
    k = "lora_unet_layers_0_attention_qkv"
    save_file({f"{k}.lora_down.weight": A, f"{k}.lora_up.weight": B, f"{k}.alpha": torch.tensor(alpha)}, str(path))
    return {f"layers.0.attention.to_{p}": (alpha / RANK) * Bp @ A for p, Bp in zip("qkv", B.chunk(3))}


def write_lokr(path, seed: int = 0) -> dict[str, torch.Tensor]:
    """ai-toolkit's LoKr over diffusers' module names: delta = kron(w1, w2) (full factors: no alpha scaling)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(16, 16, generator=g) * 0.05, torch.randn(16, 16, generator=g) * 0.05
    m = "layers.0.attention.to_q"  # 256 x 256 = (16 x 16) kron (16 x 16)
    save_file({f"diffusion_model.{m}.lokr_w1": w1, f"diffusion_model.{m}.lokr_w2": w2,
               f"diffusion_model.{m}.alpha": torch.tensor(4.0)}, str(path))
    return {m: torch.kron(w1, w2)}
