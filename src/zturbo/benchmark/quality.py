"""zturbo bench --quality: how far each --fast tier's images are from bf16 eager ones, on real weights.

Speed needs no real weights (bench.py); image quality does. The same prompts and seeds are rendered by
a plain bf16 engine and then by each tier (TIERS; or a GGUF with --gguf-mode), one engine at a time so
that each fits where one does, and compared with the report's PSNR / SSIM. A calibrated FP8 tier also
prints its per-GEMM error table (the most sensitive first): the measurement behind its policy.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from .. import defaults
from ..errors import InvalidParams
from ..metrics import psnr, ssim
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


# --tier NAME -> (LoadOptions.fast, fp8_budget): fp8 = the calibrated policy at --fp8-budget (default
# defaults.FP8_BUDGET), fp8-all = every block GEMM FP8, uncalibrated
TIERS = {"fast": ("lossless", None), "fp8": ("fp8", None), "fp8-all": ("fp8", "all")}


def _compare(params, ref, got, lpips: bool = False) -> dict:
    # PSNR of identical images is infinite: stored as 99 dB so that the JSON stays standard
    rows = [{"prompt": p.prompt, "seed": p.seed, "psnr_db": round(min(psnr(a, b), 99.0), 2),
             "ssim": round(ssim(a, b), 4)} for p, a, b in zip(params, ref, got)]
    out = {"images": rows, "mean_psnr_db": round(statistics.fmean(r["psnr_db"] for r in rows), 2),
           "mean_ssim": round(statistics.fmean(r["ssim"] for r in rows), 4)}
    if lpips:  # the report's LPIPS (AlexNet), from weights already on disk
        from ..report.learned import lpips_distances

        dist = lpips_distances({str(i): (a, b) for i, (a, b) in enumerate(zip(ref, got))})
        for i, r in enumerate(rows):
            r["lpips"] = round(dist[str(i)], 4)
        out["mean_lpips"] = round(statistics.fmean(r["lpips"] for r in rows), 4)
    return out


def error_table(policy, top: int) -> list[str]:
    """The calibration's per-GEMM FP8 errors, the largest first, each marked FP8 or kept bf16."""
    lines = [f"FP8 error per block GEMM (calibration on these weights, top {top} of {len(policy.errors)}):"]
    for unit, err in policy.ranked()[:top]:
        lines.append(f"  {err:7.2%}  {'bf16' if unit in policy.kept else 'FP8 '}  {unit}")
    return lines


def run_quality(args) -> dict:
    from ..engine import Engine

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
    from ..report.learned import status

    lp = next(m for m in status() if m.name == "LPIPS")
    print(f"LPIPS: {lp.note}")
    res = {"model": model, "size": f"{w}x{h}", "reference": "bf16 eager", "lpips": lp.note, "tiers": {}}
    for tier in args.tier:
        fast, budget = TIERS[tier]
        candidate = Engine.load(model=model, quant=args.quant or "bf16", gguf=args.gguf, device=args.device,
                                fast=fast, fp8_budget=budget if budget else args.fp8_budget if fast == "fp8" else None,
                                gguf_mode=args.gguf_mode)
        got = _render(candidate, params)
        policy = candidate.fp8_policy
        res["device"] = candidate.device_name
        res["tiers"][tier] = {"quant": candidate.info.quant, "speed": [str(f) for f in candidate.speed],
                              "fp8_policy": policy.recipe() if policy else None, **_compare(params, ref, got, lp.available)}
        if policy is not None and policy.errors:
            res["fp8_errors"] = dict(policy.ranked())
            print("\n".join(error_table(policy, args.top)))
        del candidate
        r = res["tiers"][tier]
        for row in r["images"]:
            lpips = f"  LPIPS {row['lpips']}" if "lpips" in row else ""
            print(f"{tier}: seed {row['seed']}  PSNR {row['psnr_db']} dB  SSIM {row['ssim']}{lpips}  {row['prompt'][:60]}")
        fp8 = next((f for f in r["speed"] if f.startswith("fp8:")), "")
        print(f"{tier}: mean PSNR {r['mean_psnr_db']} dB (identical images count as 99), mean SSIM {r['mean_ssim']}"
              + (f"  [{fp8}]" if fp8.startswith("fp8: off") else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=1))
    return res
