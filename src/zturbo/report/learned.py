"""Learned metrics (LPIPS, CLIP score): used only when their weights are already on disk.

Nothing here downloads: each metric first checks its files in the local caches and, when they are
absent, is reported as unavailable with the reason and what would make it available.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from pathlib import Path
from typing import Any

CLIP_REPO = "openai/clip-vit-base-patch32"
LPIPS_BACKBONE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet, which lpips(net="alex") loads


@dataclasses.dataclass
class LearnedMetric:
    name: str
    available: bool
    note: str


def _clip_files() -> str | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in ("model.safetensors", "pytorch_model.bin"):
        hit = try_to_load_from_cache(CLIP_REPO, name)
        if isinstance(hit, str) and os.path.isfile(hit):
            return hit
    return None


def _lpips_backbone() -> Path | None:
    if importlib.util.find_spec("lpips") is None:
        return None
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE
    return path if path.is_file() else None


def status() -> list[LearnedMetric]:
    lp = _lpips_backbone()
    clip = _clip_files()
    return [
        LearnedMetric("LPIPS", lp is not None,
                      f"weights found: {lp}" if lp else
                      f"unavailable: needs the `lpips` package and {LPIPS_BACKBONE} in torch's hub cache (never downloaded)"),
        LearnedMetric("CLIP score", clip is not None,
                      f"weights found: {CLIP_REPO}" if clip else
                      f"unavailable: {CLIP_REPO} is not in the Hugging Face cache (never downloaded; "
                      f"`hf download {CLIP_REPO}` fetches it)"),
    ]


def clip_scores(images: dict[str, Any], prompts: dict[str, str]) -> dict[str, float]:
    """100 x cosine(image, prompt) per image id, from the cached CLIP weights only."""
    from transformers import CLIPModel, CLIPProcessor
    import torch

    model = CLIPModel.from_pretrained(CLIP_REPO, local_files_only=True).eval()
    proc = CLIPProcessor.from_pretrained(CLIP_REPO, local_files_only=True)
    out = {}
    with torch.no_grad():
        for item_id, im in images.items():
            batch = proc(text=[prompts[item_id]], images=im.convert("RGB"), return_tensors="pt", padding=True, truncation=True)
            o = model(**batch)
            a = o.image_embeds / o.image_embeds.norm(dim=-1, keepdim=True)
            b = o.text_embeds / o.text_embeds.norm(dim=-1, keepdim=True)
            out[item_id] = float(100 * (a * b).sum())
    return out


def lpips_distances(pairs: dict[str, tuple[Any, Any]]) -> dict[str, float]:
    """LPIPS (AlexNet) per pair id, from the cached weights only."""
    import lpips
    import numpy as np
    import torch

    net = lpips.LPIPS(net="alex", verbose=False).eval()

    def t(im):
        a = np.asarray(im.convert("RGB"), dtype=np.float32) / 127.5 - 1
        return torch.from_numpy(a).permute(2, 0, 1)[None]

    with torch.no_grad():
        return {k: float(net(t(a), t(b.resize(a.size)))) for k, (a, b) in pairs.items()}


def measure(metrics: list[LearnedMetric], images: dict, prompts: dict[str, str], analyses: dict) -> None:
    """Add LPIPS (to each frame's reference) and CLIP score (to its prompt) to the captions, where the
    weights are on disk. A failure is reported in the metric's note, never raised."""
    for m in metrics:
        if not m.available:
            continue
        try:
            if m.name == "CLIP score":
                scores = clip_scores(images, prompts)
                for a in analyses.values():
                    for item_id, s in scores.items():
                        if item_id in a.captions:
                            a.captions[item_id] += f" · CLIP {s:.1f}"
                m.note += f"; mean {sum(scores.values()) / max(1, len(scores)):.2f} over {len(scores)} images"
            elif m.name == "LPIPS":
                for a in analyses.values():
                    pairs = {i: (images[r], images[i]) for i, r in a.refs.items() if i != r}
                    for item_id, d in lpips_distances(pairs).items():
                        a.captions[item_id] += f" · LPIPS {d:.3f}"
                m.note += "; shown beside SSIM (to the last step, to bf16)"
        except Exception as exc:  # a broken cache must not cost the whole report
            m.available, m.note = False, f"unavailable: {type(exc).__name__}: {exc}"
