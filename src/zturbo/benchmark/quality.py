"""zturbo bench --quality: how far --fast's images are from bf16 eager ones, on real weights.

Speed needs no real weights (bench.py); image quality does. The same prompts and seeds are rendered by
a plain bf16 engine and then by a --fast one (or a GGUF one with --gguf-mode), one engine at a time so
that both fit where one does, and compared with the report's PSNR / SSIM.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .. import defaults
from ..errors import InvalidParams
from ..params import GenerationParams

PROMPTS = (
    "A sleek black helmeted robot shown in a three-quarter profile against a solid red background",
    "a red fox in the snow, morning light, shallow depth of field",
    "a city street at night in the rain, neon signs reflected in puddles",
)


def _render(engine, params: list[GenerationParams]):
    images = [engine.generate(p).image for p in params]
    engine.free_memory()
    return images


def run_quality(args) -> dict:
    from ..engine import Engine
    from ..metrics import psnr, ssim

    model = args.model or defaults.MODEL_ID
    if args.tiny:
        model = defaults.TINY_MODEL
    w, h = args.sizes[0]
    params = [GenerationParams(prompt=p, seed=defaults.QUALITY_SEED + i, width=w, height=h, rng="cpu")
              for i, p in enumerate(PROMPTS[: args.prompts])]
    if not params:
        raise InvalidParams("--prompts must be at least 1")
    ref_engine = Engine.load(model=model, quant="bf16", device=args.device)
    ref = _render(ref_engine, params)
    del ref_engine
    candidate = Engine.load(model=model, quant=args.quant or "bf16", gguf=args.gguf, device=args.device,
                            fast="fp8" if args.tier == "fp8" else "lossless",
                            gguf_mode=args.gguf_mode)
    got = _render(candidate, params)
    # PSNR of identical images is infinite: stored as 99 dB so that the JSON stays standard
    rows = [{"prompt": p.prompt, "seed": p.seed, "psnr_db": round(min(psnr(a, b), 99.0), 2),
             "ssim": round(ssim(a, b), 4)} for p, a, b in zip(params, ref, got)]
    res = {
        "model": model, "size": f"{w}x{h}", "reference": "bf16 eager", "device": candidate.device_name,
        "candidate": {"quant": candidate.info.quant, "speed": [str(f) for f in candidate.speed]},
        "images": rows,
        "mean_psnr_db": round(statistics.fmean(r["psnr_db"] for r in rows), 2),
        "mean_ssim": round(statistics.fmean(r["ssim"] for r in rows), 4),
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    for r in rows:
        print(f"seed {r['seed']}  PSNR {r['psnr_db']} dB  SSIM {r['ssim']}  {r['prompt'][:60]}")
    print(f"mean PSNR {res['mean_psnr_db']} dB (identical images count as 99), mean SSIM {res['mean_ssim']}")
    return res
