"""The Flux VAE decode, the lossless tier's largest piece outside the transformer: eager, channels_last,
and torch.compile with static and dynamic shapes, over several sizes (first-call and steady seconds).

Random weights of the real VAE (they time like the checkpoint). The question it answers: can the lossless
tier compile the decoder without paying a compile per size on a sweep of many shapes? On the device machine:
    PYTHONPATH=src python3 bench/vae_decode.py --json $OUT/vae_decode.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1024x1024,1280x720,720x1280,1536x1536,832x1216")
    ap.add_argument("--variants", nargs="+", default=["eager", "channels_last", "compile-dynamic", "compile-static"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
    from diffusers import AutoencoderKL

    from zturbo.benchmark.randmodel import VAE_CONFIG

    dev = torch.device("cuda")
    res = {"card": torch.cuda.get_device_name(dev), "torch": torch.__version__, "command": " ".join(["python3"] + sys.argv),
           "variants": {}}
    for variant in args.variants:
        torch._dynamo.reset()
        torch.manual_seed(0)
        with torch.device(dev):
            vae = AutoencoderKL(**VAE_CONFIG).to(torch.bfloat16).eval()
        dec = vae.decoder
        if variant == "channels_last":
            dec = dec.to(memory_format=torch.channels_last)
        elif variant.startswith("compile"):
            dec = torch.compile(dec, dynamic=variant == "compile-dynamic")
        rows = {}
        for w, h in sizes:
            z = torch.randn(1, 16, h // 8, w // 8, device=dev, dtype=torch.bfloat16)
            if variant == "channels_last":
                z = z.to(memory_format=torch.channels_last)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            ref = dec(z)
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            runs = []
            for _ in range(5):
                t0 = time.perf_counter()
                dec(z)
                torch.cuda.synchronize()
                runs.append(time.perf_counter() - t0)
            rows[f"{w}x{h}"] = {"first_call_s": round(first, 2), "s": round(statistics.median(runs), 4)}
            print(variant, w, h, rows[f"{w}x{h}"], flush=True)
            del ref
        res["variants"][variant] = rows
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        del vae, dec
        torch.cuda.empty_cache()


if __name__ == "__main__":
    with torch.no_grad():
        main()
