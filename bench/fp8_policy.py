"""--fp8's calibrated layer policy on the real architecture: what it costs and what it buys, in one run.

Variants, each on a fresh transformer from the same random weights (zturbo.benchmark.randmodel: they time
like the checkpoint), 1024x1024, 8 passes, prompt -> image (no PNG), median of --repeats after a warm-up:
  bf16          plain zturbo (eager bf16): the quality reference
  fast          --fast, the lossless tier (compiled bf16)
  fp8-all       --fp8 --fp8-budget all: every block GEMM FP8, uncalibrated
  fp8-B         --fp8 --fp8-budget B (calibrated), one per --budgets value
plus the calibration's own cost (one bf16 generation with the hooks, cold cache; then the cached lookup),
the policy (kept GEMMs, mean error) and PSNR / SSIM of each variant's images against bf16's.

On random weights every GEMM's FP8 error is about the same (~3.7%: row-wise e4m3 on Gaussian-like data), so
the ranking is close to noise and the default budget keeps nothing in bf16; the JSON says so. The speed
numbers and the calibration cost hold for the checkpoint; the errors and image metrics do not.
On the device machine:
    PYTHONPATH=src python3 bench/fp8_policy.py --json bench/fp8_policy_H200.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

import torch

PROMPTS = ("a red fox in the snow, morning light, shallow depth of field",
           "A sleek black helmeted robot shown in a three-quarter profile against a solid red background")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--budgets", default="0.04,0.035", help="calibrated variants, comma-separated")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="the tiny architecture: a smoke run of this script")
    ap.add_argument("--device", default="cuda", help="cpu: with --tiny, a smoke run anywhere (nothing FP8 runs)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ.setdefault("ZTURBO_CACHE", tempfile.mkdtemp(prefix="zturbo-cache-"))  # a cold calibration cache

    from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

    from zturbo import GenerationParams, defaults
    from zturbo.benchmark.randmodel import build_pipeline, transformer_from_state
    from zturbo.engine import Engine
    from zturbo.metrics import psnr, ssim
    from zturbo.models import LoadedModel, ModelInfo
    from zturbo.speed import fp8_policy as P
    from zturbo.speed.fast import apply_fast

    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    pipe = build_pipeline(dev, tiny=args.tiny)
    cfg, state = dict(pipe.transformer.config), {k: v.to("cpu") for k, v in pipe.transformer.state_dict().items()}
    pipe.transformer = None
    torch.cuda.empty_cache()
    size = 64 if args.tiny else args.size
    params = [GenerationParams(prompt=p, seed=defaults.QUALITY_SEED + i, width=size, height=size, rng="cpu")
              for i, p in enumerate(PROMPTS)]
    budgets = [float(b) for b in args.budgets.split(",") if b]
    res = {"card": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "torch": torch.__version__, "command": " ".join(sys.argv),
           "size": f"{size}x{size}", "passes": defaults.STEPS, "weights": "random (real architecture)" if not args.tiny
           else "random (tiny architecture)",
           "note": "random weights: every GEMM's FP8 error is about the same (~3.7%), so the per-layer errors, "
                   "the ranking and the image metrics say little about the real checkpoint; the seconds and the "
                   "calibration cost hold for it. Run zturbo bench --quality on real weights for the quality.",
           "variants": {}}

    def engine():
        tr = transformer_from_state(state, cfg, dev)
        p = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config),
                           vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, transformer=tr)
        # a fixed identity: hashing 12 GB of random weights would only time the hash
        info = ModelInfo(model="random", source="tiny" if args.tiny else "bench", quant="bf16", label="random",
                         weights_sha256="random-seed0")
        return Engine(LoadedModel(p, info))

    def timed(eng, name, extra):
        eng.generate(params[0])  # warm-up: compile, CUDA graph capture
        secs = []
        for _ in range(args.repeats):
            sync()
            t0 = time.perf_counter()
            eng.generate(params[0])
            sync()
            secs.append(time.perf_counter() - t0)
        images = [eng.generate(p).image for p in params]
        row = {"s_per_image": round(statistics.median(secs), 4), "runs_s": [round(s, 4) for s in secs],
               "features": [str(f) for f in eng.speed], **extra}
        if name != "bf16":
            row["psnr_db"] = [round(min(psnr(a, b), 99.0), 2) for a, b in zip(ref, images)]
            row["ssim"] = [round(ssim(a, b), 4) for a, b in zip(ref, images)]
        res["variants"][name] = row
        print(name, json.dumps({k: v for k, v in row.items() if k != "features"}), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        return images

    def run(name, tier=None, policy_budget=None):
        nonlocal ref
        torch._dynamo.reset()
        eng = engine()
        extra = {}
        policy = None
        if policy_budget is not None:
            t0 = time.perf_counter()
            policy = P.calibrate(eng, policy_budget)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            P.calibrate(eng, policy_budget)  # the second load's cost: the cache
            extra["calibration"] = {"first_s": round(first, 2), "measured": policy.seconds is not None,
                                    "cached_lookup_s": round(time.perf_counter() - t0, 3), "budget": policy_budget,
                                    "kept_bf16": list(policy.kept), "gemms": len(policy.errors),
                                    "mean_error_after": round(policy.mean_error, 5),
                                    "mean_error_all_fp8": round(statistics.fmean(policy.errors.values()), 5),
                                    "top_errors": [[u, round(e, 5)] for u, e in policy.ranked()[:15]],
                                    "summary": policy.summary()}
            if not res.get("per_gemm_errors"):
                res["per_gemm_errors"] = {u: round(e, 5) for u, e in policy.ranked()}
        if tier:
            eng.speed = apply_fast(eng.pipe, tier, fp8_policy=policy)
            eng.unpadded_prompts = True
        images = timed(eng, name, extra)
        if name == "bf16":
            ref = images
        del eng
        torch.cuda.empty_cache()

    ref = None
    run("bf16")
    run("fast", "lossless")
    run("fp8-all", "fp8")
    for b in budgets:
        run(f"fp8-{b:g}", "fp8", policy_budget=b)


if __name__ == "__main__":
    with torch.no_grad():
        main()
