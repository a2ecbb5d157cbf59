"""--fast on a workload of many shapes: the article's five bf16 experiments (50 images, 24 shapes), plain
against each --fast tier, compile included, on a cold and on a warm compile cache.

Random weights of the real architecture (zturbo.benchmark.randmodel: they time like the checkpoint), one
process, one variant after another with torch._dynamo.reset() between them. Variants: plain | fast | fp8
(zturbo's apply_fast tiers, each on a fresh Inductor cache: cold) and fast-warm | fp8-warm (the same tier
again on the cache the cold run filled: what a second `zturbo sweep` pays). For each: seconds per image in
plan order, the sum, and Dynamo's frame counts. Guidance > 0 images run compiled, one image of their batch at a
time (speed/graphs.py), as in `zturbo sweep`. On the device machine:
    PYTHONPATH=src python3 bench/fast_shapes.py --json $OUT/fast_shapes.json
(`static`/`dynamic` are the two compile strategies bench/fast_shapes_static_vs_dynamic_H200.json compared,
with the VAE decoder compiled as --fast did then.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import torch


def items(names):
    from zturbo.sweep.specs import article_experiments

    return [(i.id, i.params) for e in article_experiments(names) for i in e.items if i.quant == "bf16"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--experiments", nargs="+", default=["steps", "guidance", "seeds", "aspect", "resolution"])
    ap.add_argument("--variants", nargs="+", default=["plain", "fast", "fast-warm", "fp8", "fp8-warm"])
    ap.add_argument("--sort", action="store_true", help="run the items grouped by shape, as `zturbo sweep` does")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    from zturbo.benchmark.randmodel import build_pipeline, transformer_from_state
    from zturbo.engine import Engine
    from zturbo.models import LoadedModel, ModelInfo
    from zturbo.speed.fast import apply_fast

    dev = torch.device("cuda")
    pipe = build_pipeline(dev)
    cfg, state = dict(pipe.transformer.config), {k: v.to("cpu") for k, v in pipe.transformer.state_dict().items()}
    pipe.transformer = None
    torch.cuda.empty_cache()
    work = items(args.experiments)
    if args.sort:
        work.sort(key=lambda x: (x[1].width, x[1].height))  # stable: zturbo sweep's own order (sweep/runner.py)
    res = {"card": torch.cuda.get_device_name(dev), "torch": torch.__version__, "command": " ".join(sys.argv),
           "images": len(work), "shapes": len({(p.width, p.height, p.uses_cfg) for _, p in work}), "variants": {}}
    print(json.dumps({k: res[k] for k in ("card", "images", "shapes")}), flush=True)
    caches: dict[str, str] = {}
    for variant in args.variants:
        torch._dynamo.reset()
        tier = variant.removesuffix("-warm")
        if not variant.endswith("-warm") or tier not in caches:
            caches[tier] = tempfile.mkdtemp(prefix="inductor-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = caches[tier]
        from diffusers import FlowMatchEulerDiscreteScheduler, ZImagePipeline

        tr = transformer_from_state(state, cfg, dev)
        p = ZImagePipeline(scheduler=FlowMatchEulerDiscreteScheduler.from_config(pipe.scheduler.config), vae=pipe.vae,
                           text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, transformer=tr)
        eng = Engine(LoadedModel(p, ModelInfo(model="random", source="bench", quant="bf16", label="random")))
        feats = []
        if tier in ("static", "dynamic"):
            feats = apply_fast(p, "lossless", compile=False, compile_vae=True)
            tr.compile_repeated_blocks(fullgraph=True, dynamic=tier == "dynamic")
            eng.unpadded_prompts = True
        elif tier != "plain":
            feats = apply_fast(p, "fp8" if tier == "fp8" else "lossless")
            eng.unpadded_prompts = True
        from torch._dynamo.utils import counters

        counters.clear()
        rows = []
        t_all = time.perf_counter()
        for iid, params in work:
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            r = eng.generate(params.replace(rng="cuda"))
            torch.cuda.synchronize()
            rows.append({"id": iid, "size": f"{params.width}x{params.height}", "cfg": params.uses_cfg,
                         "steps": params.steps, "s": round(time.perf_counter() - t0, 3),
                         "denoise": r.recipes[0]["timings"]["denoising"], "decode": r.recipes[0]["timings"]["decoding"]})
            print(variant, rows[-1], flush=True)
        total = time.perf_counter() - t_all
        res["variants"][variant] = {"total_s": round(total, 2), "frames": dict(counters["frames"]),
                                    "features": [str(f) for f in feats], "items": rows}
        print(variant, "TOTAL", round(total, 1), dict(counters["frames"]), flush=True)
        del eng, p, tr
        torch.cuda.empty_cache()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)


if __name__ == "__main__":
    with torch.no_grad():
        main()
