"""Where a --fast image's time goes (issue 6): the DiT block variants, a kernel profile, the steps after it.

1. One DiT pass at 1024x1024 (FP8 + regional compile) for the block variants: diffusers' complex RoPE;
   real-valued RoPE; real RoPE + fused QKV and gate+up GEMMs; the last replayed as a CUDA graph (--fast).
2. A torch.profiler trace of one pass of the last variant: kernel time by kind (GEMM, attention, Triton
   fusions, other) against the pass's wall time, the top kernels, and a Chrome trace.
3. prompt -> PNG through the Engine with --fast, split into its stages and the PNG write, and the PNG
   encoders (zturbo's threaded writer against Pillow's) on that image; the VAE decoder eager vs compiled.

    PYTHONPATH=src python3 bench/profile_fast.py --out DIR     (random weights of the real architecture)
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from zturbo.benchmark.harness import PROMPT, Runner, dit_flops, gpu_time  # noqa: E402


def kind_of(name: str) -> str:
    n = name.lower()
    if n.startswith("triton"):  # Inductor's fusions (their names list the ops they absorbed)
        return "triton fusion"
    if any(k in n for k in ("flash", "fmha", "sdpa")):
        return "attention"
    if any(k in n for k in ("gemm", "xmma", "cutlass", "nvjet", "cublas")):
        return "gemm"
    return "other"


def profile_pass(fn, out: Path) -> dict:
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    prof.export_chrome_trace(str(out / "fast_pass_trace.json"))
    kernels: dict[str, list[float]] = {}
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            kernels.setdefault(e.name, []).append(e.device_time / 1e3)  # microseconds -> ms
    by_kind: dict[str, float] = {}
    for name, ts in kernels.items():
        by_kind[kind_of(name)] = by_kind.get(kind_of(name), 0.0) + sum(ts)
    top = sorted(((sum(ts), len(ts), name) for name, ts in kernels.items()), reverse=True)[:25]
    return {
        "wall_ms_profiled": round(1000 * wall, 2),
        "kernel_ms_total": round(sum(by_kind.values()), 2),
        "kernel_ms_by_kind": {k: round(v, 2) for k, v in sorted(by_kind.items(), key=lambda kv: -kv[1])},
        "kernel_launches": sum(len(ts) for ts in kernels.values()),
        "top_kernels": [{"ms": round(ms, 3), "calls": n, "name": name[:140]} for ms, n, name in top],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", default="1024x1024")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (int(x) for x in args.size.split("x"))
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(out / "inductor-cache-unused"))

    from zturbo.engine import Engine
    from zturbo.models.loader import LoadedModel, ModelInfo
    from zturbo.speed import fp8
    from zturbo.speed.fast import apply_fast
    from zturbo.speed.fused import rewrite_blocks
    from zturbo.speed.graphs import install as install_graphs
    from zturbo.benchmark.randmodel import build_pipeline, transformer_from_state

    dev = torch.device("cuda")
    res: dict = {"card": torch.cuda.get_device_name(dev), "torch": torch.__version__, "size": args.size,
                 "command": " ".join([sys.executable.rsplit("/", 1)[-1]] + sys.argv)}

    def save():
        (out / "profile_fast.json").write_text(json.dumps(res, indent=1))

    pipe = build_pipeline(dev)
    pipe.set_progress_bar_config(disable=True)
    cfg = dict(pipe.transformer.config)
    state = {k: v.to("cpu") for k, v in pipe.transformer.state_dict().items()}
    engine = Engine(LoadedModel(pipe, ModelInfo(model="random", source="bench", quant="bf16", label="random")))
    emb = engine.encode_prompt(PROMPT).embeds
    flops = dit_flops(w, h, len(emb), pipe.transformer.config)

    # 1. block variants
    res["variants"] = {}
    for name, rewrite, fuse in (("complex_rope", False, False), ("real_rope", True, False), ("real_rope_fused", True, True)):
        pipe.transformer = None
        torch._dynamo.reset()
        torch.cuda.empty_cache()
        tr = transformer_from_state(state, cfg, dev)
        if rewrite:
            rewrite_blocks(tr, fuse=fuse)
        n = fp8.quantize_fp8(tr)
        tr.compile_repeated_blocks(fullgraph=True)
        pipe.transformer = tr
        fwd = Runner(name, pipe).forward(w, h, emb)
        with torch.no_grad():
            t0 = time.perf_counter()
            fwd()
            torch.cuda.synchronize()
            first = time.perf_counter() - t0
            s = gpu_time(fwd, dev, n=10, warm=3)
        res["variants"][name] = {"fp8_matrices": n, "first_call_s": round(first, 1), "ms_per_pass": round(1000 * s, 2),
                                 "tflops": round(flops / s / 1e12, 1)}
        print(name, res["variants"][name], flush=True)
        save()

    # 2. kernel profile of the last variant, then the same pass replayed as a CUDA graph
    with torch.no_grad():
        res["profile_real_rope_fused"] = profile_pass(fwd, out)
        print(json.dumps(res["profile_real_rope_fused"], indent=1), flush=True)
        graphed = install_graphs(tr)
        s = gpu_time(fwd, dev, n=10, warm=3)
        res["variants"]["real_rope_fused_cuda_graph"] = {"ms_per_pass": round(1000 * s, 2), "tflops": round(flops / s / 1e12, 1),
                                                         "graphs": len(graphed.graphs), "failed": graphed.failed}
    print(res["variants"]["real_rope_fused_cuda_graph"], flush=True)
    save()

    # 3. prompt -> PNG with everything --fast turns on (the transformer is already FP8 + compiled)
    features = apply_fast(pipe)
    res["features"] = [str(f) for f in features]
    from zturbo.params import GenerationParams

    params = GenerationParams(prompt=PROMPT, seed=42, width=w, height=h)
    runs = []
    for i in range(7):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        r = engine.generate(params)
        t1 = time.perf_counter()
        r.save([out / "fast.png"])
        t2 = time.perf_counter()
        if i >= 2:
            runs.append({"generate_s": t1 - t0, "save_s": t2 - t1, **r.recipes[0]["timings"]})
    res["prompt_to_png"] = {k: round(statistics.median(x[k] for x in runs), 4) for k in runs[0]}
    res["prompt_to_png"]["total_s"] = round(statistics.median(x["generate_s"] + x["save_s"] for x in runs), 4)

    import numpy as np
    from PIL import Image

    from zturbo.pngwrite import encode_png

    pixels = np.asarray(r.images[0])
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        encode_png(pixels)
        t.append(time.perf_counter() - t0)
    buf = io.BytesIO()
    t0 = time.perf_counter()
    Image.fromarray(pixels).save(buf, format="PNG")
    res["png_encode_s"] = {"zturbo": round(statistics.median(t), 4), "pillow": round(time.perf_counter() - t0, 4),
                           "cpu_cores": os.cpu_count()}
    print(res["prompt_to_png"], res["png_encode_s"], flush=True)
    save()

    # the VAE decoder: compiled (what --fast runs) vs a fresh eager copy
    z = torch.randn(1, 16, h // 8, w // 8, device=dev, dtype=torch.bfloat16)
    with torch.no_grad():
        res["vae_decode_ms"] = {"compiled": round(1000 * gpu_time(lambda: pipe.vae.decode(z), dev, 10, 3), 2)}
        pipe.vae.decoder._compiled_call_impl = None  # what Module.compile() set: eager again
        res["vae_decode_ms"]["eager"] = round(1000 * gpu_time(lambda: pipe.vae.decode(z), dev, 10, 3), 2)
        pipe.vae.to(memory_format=torch.channels_last)
        res["vae_decode_ms"]["eager_channels_last"] = round(1000 * gpu_time(lambda: pipe.vae.decode(z), dev, 10, 3), 2)
    print(res["vae_decode_ms"], flush=True)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
