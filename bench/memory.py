"""Memory modes on the real architecture: per emulated card, what `--memory auto` picks, the peak
GPU memory and the seconds per 1024x1024 image (8 passes), next to the unconstrained run (stock:
everything resident, no cap) measured in the same process.

Random weights of the real architecture (zturbo.benchmark.randmodel): time and
memory do not depend on weight values. A card of B GB is emulated with zturbo's own --vram-budget
path: torch's allocator capped at B x 1e9 bytes (torch.cuda.set_per_process_memory_fraction) and
auto planning within it. (An "8 GB" card has 8 GiB = 8.59e9 bytes, ~0.5e9 of them taken by the
CUDA context, so the emulation is a little stricter than the card.)

    PYTHONPATH=src python bench/memory.py --out $OUT/memory.json [--q8]

--q8 also writes a Q8_0 GGUF of the random transformer (quantised on the GPU, byte-identical to
gguf.quants: tests/memory/test_bench_q8.py) and measures auto on a 12 GB card with it on disk.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

PROMPT = ("A sleek black helmeted robot with a glowing visor stands against a solid red background, "
          "studio lighting, sharp focus, detailed mechanical joints, cinematic composition")
SIZE = 1024


def build_pipeline(dev):
    """The real Z-Image-Turbo architecture with random weights, left on the CPU (as after loading)."""
    from zturbo.benchmark.randmodel import build_pipeline as random_pipeline

    pipe = random_pipeline(dev)  # random init is fast on the GPU; then to the CPU like loaded weights
    for m in (pipe.transformer, pipe.text_encoder, pipe.vae):
        m.to("cpu")
    torch.cuda.empty_cache()
    return pipe


def stage_peaks(engine) -> dict:
    """Working memory of each stage above what was allocated before it (GB), for defaults.py."""
    pipe, gb = engine.pipe, 1e9
    out = {}
    engine._prompt_cache.clear()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    enc = engine.encode_prompt(PROMPT + " again")
    torch.cuda.synchronize()
    out["text_encoder"] = round((torch.cuda.max_memory_allocated() - base) / gb, 3)
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.no_grad():
        lat = pipe(prompt_embeds=[enc.embeds], height=SIZE, width=SIZE, num_inference_steps=1,
                   guidance_scale=0.0, output_type="latent").images
    torch.cuda.synchronize()
    out["denoise"] = round((torch.cuda.max_memory_allocated() - base) / gb, 3)
    from zturbo.memory import set_vae_tiling

    tiling = bool(getattr(pipe.vae, "use_tiling", False))
    for tiled in (False, True):
        set_vae_tiling(pipe.vae, tiled)
        z = lat.to(torch.bfloat16) / 0.3611 + 0.1159
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        try:
            with torch.no_grad():
                pipe.vae.decode(z, return_dict=False)
            torch.cuda.synchronize()
            out["decode_tiled" if tiled else "decode"] = round((torch.cuda.max_memory_allocated() - base) / gb, 3)
        except torch.cuda.OutOfMemoryError:
            out["decode_tiled" if tiled else "decode"] = "oom"
        del z
    set_vae_tiling(pipe.vae, tiling)
    return out


def run_case(engine, transformers, name, memory, budget, available, images, deadline, forced=None):
    from zturbo import GenerationParams, OutOfMemory
    from zturbo import memory as zmem

    pipe, dev = engine.pipe, torch.device("cuda")
    zmem.reset(pipe)
    engine._prompt_cache.clear()
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(1.0)
    if budget is not None:
        zmem.cap_allocator(dev, budget)
    budget_free = zmem.free_gb(dev, budget)
    plan = zmem.choose(budget_free, 1.0, memory, None, available, capped=budget is not None)
    if forced is not None:  # a plan too big for the card, to exercise the out-of-memory retry
        plan = zmem.Plan(*forced, None, round(budget_free, 2), "forced")
    if pipe.transformer is not transformers[plan.quant]:
        pipe.register_modules(transformer=transformers[plan.quant])
        pipe.transformer.register_forward_pre_hook(engine._count_pass)
    row = {"case": name, "card_gb": budget, "memory": memory, "on_disk": list(available),
           "plan": plan.label, "reason": plan.reason, "estimated_peak_gb": plan.peak_gb}
    placement = zmem.Placement(pipe, dev, plan, memory, capped=budget is not None)
    t0 = time.perf_counter()
    if not placement.try_apply():
        lower = zmem.next_lower(plan)
        row["placing"] = f"out of memory placing {plan.label}; retried in {lower.label if lower else None}"
        if lower is None or not placement.try_apply(lower):
            row["error"] = "out of memory while placing"
            return row
    row["place_s"] = round(time.perf_counter() - t0, 2)
    engine.memory = placement
    recipes = []
    try:
        for i in range(images + 1):  # the first encodes the prompt (and warms up); the rest reuse it
            if i and time.monotonic() > deadline:
                break
            r = engine.generate(GenerationParams(prompt=PROMPT, seed=i, width=SIZE, height=SIZE, rng="cuda"))
            recipes.append(r.recipes[0])
    except OutOfMemory as exc:
        row["error"] = str(exc)
    row["final_plan"] = engine.memory.plan.label
    if recipes:
        totals = [sum(rc["timings"].values()) for rc in recipes]
        row["first_image_s"] = round(totals[0], 3)
        row["first_text_encoding_s"] = recipes[0]["timings"]["text_encoding"]
        rest = recipes[1:] or recipes
        row["s_per_image"] = round(statistics.median(sum(rc["timings"].values()) for rc in rest), 3)
        row["denoise_s"] = round(statistics.median(rc["timings"]["denoising"] for rc in rest), 3)
        row["decode_s"] = round(statistics.median(rc["timings"]["decoding"] for rc in rest), 3)
        row["peak_gb"] = max(rc["peak_memory_gb"] for rc in recipes)
        row["reserved_peak_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 3)
        row["passes"] = recipes[-1]["passes"]
        row["images_timed"] = len(rest)
        row["warnings"] = sorted({w for rc in recipes for w in rc["warnings"] if "black" not in w and "NaN" not in w})
        if "error" not in row and time.monotonic() < deadline:
            try:
                row["stage_gb"] = stage_peaks(engine)
            except torch.cuda.OutOfMemoryError:
                row["stage_gb"] = "oom"
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", tempfile.gettempdir()), "memory.json"))
    ap.add_argument("--images", type=int, default=2, help="timed images per case, after one warm-up image")
    ap.add_argument("--budgets", default="24,16,12,8", help="emulated cards, GB")
    ap.add_argument("--q8", action="store_true", help="also build a Q8_0 GGUF and run auto at 12 GB with it on disk")
    ap.add_argument("--deadline-s", type=float, default=300, help="skip what is left after this many seconds")
    args = ap.parse_args()
    t_start = time.monotonic()
    deadline = t_start + args.deadline_s

    from zturbo.engine import Engine, _quiet_libraries
    from zturbo.models.loader import LoadedModel, ModelInfo

    _quiet_libraries()
    dev = torch.device("cuda")
    out = {"gpu": torch.cuda.get_device_name(), "gpu_total_gb": round(torch.cuda.mem_get_info()[1] / 1e9, 1),
           "command": "PYTHONPATH=src python bench/memory.py " + " ".join(sys.argv[1:]),
           "size": f"{SIZE}x{SIZE}", "steps": 8, "torch": torch.__version__,
           "note": "random weights of the real architecture; a card of B GB = torch allocator capped at B*1e9 "
                   "bytes via --vram-budget; s_per_image = median over images after the first (prompt "
                   "embeddings cached); first_image_s includes encoding the prompt and warm-up",
           "cases": []}
    try:
        import diffusers

        out["diffusers"] = diffusers.__version__
    except Exception:
        pass

    def save():
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))

    t0 = time.perf_counter()
    pipe = build_pipeline(dev)
    out["build_s"] = round(time.perf_counter() - t0, 1)
    info = ModelInfo(model="random", source="bench", quant="bf16", label="random weights, real architecture")
    from zturbo import memory as zmem

    first = zmem.Plan("full", "bf16", "gpu", False, None, None, "")
    engine = Engine(LoadedModel(pipe, info), memory=zmem.Placement(pipe, dev, first))
    transformers = {"bf16": pipe.transformer}
    bf16 = ("bf16",)
    cases = [("unconstrained (stock: everything resident)", "full", None, bf16, None)]
    cases += [(f"auto, {b} GB card", "auto", float(b), bf16, None) for b in args.budgets.split(",")]
    cases += [("everything resident forced on a 16 GB card (retry while placing)", "full", 16.0, bf16,
               ("full", "bf16", "gpu", False)),
              ("full, untiled decode forced on a 14 GB card (retry while generating)", "full", 14.0, bf16,
               ("full", "bf16", "stream", False)),
              ("model-offload, no cap", "model-offload", None, bf16, None),
              ("group-offload, no cap", "group-offload", None, bf16, None)]
    for name, memory, budget, available, forced in cases:
        if time.monotonic() > deadline:
            out["cases"].append({"case": name, "skipped": "out of device time"})
            continue
        print(f"== {name}", flush=True)
        row = run_case(engine, transformers, name, memory, budget, available, args.images, deadline, forced)
        print(json.dumps(row), flush=True)
        out["cases"].append(row)
        save()
    if args.q8 and time.monotonic() < deadline - 60:
        zmem.reset(pipe)
        torch.cuda.set_per_process_memory_fraction(1.0)
        t0 = time.perf_counter()
        path = Path(tempfile.gettempdir()) / "z-random-Q8_0.gguf"
        cfg = Path(tempfile.mkdtemp(prefix="zcfg-"))
        transformers["bf16"].save_config(cfg)
        from zturbo.models.gguf import load_transformer
        from zturbo.benchmark.randmodel import write_q8_gguf

        write_q8_gguf(transformers["bf16"].state_dict(), path, device=dev)

        transformers["q8"] = load_transformer(path, str(cfg), None, torch.bfloat16)
        out["q8_build_s"] = round(time.perf_counter() - t0, 1)
        out["q8_file_gb"] = round(path.stat().st_size / 1e9, 2)
        for b in (12.0, 8.0):
            name = f"auto, {b:g} GB card, Q8 GGUF on disk"
            print(f"== {name}", flush=True)
            row = run_case(engine, transformers, name, "auto", b, ("bf16", "q8"), args.images, deadline)
            print(json.dumps(row), flush=True)
            out["cases"].append(row)
            save()
    out["total_s"] = round(time.monotonic() - t_start, 1)
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
