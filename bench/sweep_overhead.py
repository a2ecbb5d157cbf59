"""Sweep runner benchmark (issue 3): the runner's overhead, and images per minute with 1 and 2 processes.

1. Overhead, one process: N generations called directly (engine.generate, then again with save_png, what a
   hand-written loop does) against `run_sweep` making the same N images (PNG + sha256 + manifest record
   per image, written on the runner's background thread). Target: < 3 % over the direct generations.
2. Scaling: the same N-image sweep run by 1 and by 2 processes (RANK / WORLD_SIZE / LOCAL_RANK set as
   `accelerate launch` sets them; one GPU each), timed from a common start after every process has loaded
   and warmed up. Target: >= 1.9x images/min on 2 GPUs.

On a GPU machine (random weights of the real architecture, bf16, 1024x1024, 8 passes):
    PYTHONPATH=src python3 bench/sweep_overhead.py --model random --json bench/sweep_overhead_<card>.json
CPU smoke check (the tiny model; the numbers mean nothing):
    python bench/sweep_overhead.py --model tiny --size 64x64 --images 6
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def build_engine(model: str, device: str):
    from zturbo import Engine

    if model != "random":
        return Engine.load(model=model, device=device)
    # The real Z-Image-Turbo architecture with random weights (it times like the checkpoint: same shapes, same kernels).
    from zturbo.models import LoadedModel, ModelInfo
    from zturbo.benchmark.randmodel import build_pipeline

    pipe = build_pipeline(device)
    info = ModelInfo(model="random", source="bench", quant="bf16", label="random weights, real architecture")
    return Engine(LoadedModel(pipe, info))


def make_plan(args):
    from zturbo.sweep.grid import build_grid
    from zturbo.sweep.plan import Plan

    # guidance 0 and a fixed prompt, as the article's sweeps; seeds 0..N-1 give N distinct images
    exp = build_grid("bench", ["a sleek black helmeted robot against a solid red background"],
                     {"size": args.size, "steps": args.steps, "rng": "cpu"}, [("seed", list(range(args.images)))])
    return Plan([exp], exp.items[0].params.prompt, "")


def sync(engine) -> None:
    if engine.device.type == "cuda":
        torch.cuda.synchronize(engine.device)


def overhead(args, device: str) -> dict:
    from zturbo.sweep.runner import run_sweep

    engine = build_engine(args.model, device)
    plan = make_plan(args)
    params = [item.params for item in plan.items]
    engine.generate(params[0])  # warm-up: kernels, allocator, the prompt's embeddings
    sync(engine)
    with tempfile.TemporaryDirectory() as tmp:

        def direct_run(save: bool) -> float:
            total = 0.0
            for k, p in enumerate(params):
                t0 = time.perf_counter()
                result = engine.generate(p)
                if save:
                    result.save([Path(tmp) / "direct" / f"{k}.png"])
                sync(engine)
                total += time.perf_counter() - t0
            return total

        # direct runs before and after the sweep, so clock and thermal drift cancel out in the mean
        direct = [direct_run(False)]
        direct_saved = [direct_run(True)]
        t0 = time.perf_counter()
        run_sweep(plan, Path(tmp) / "sweep", loader=lambda quant: engine, model=args.model, quiet=True)
        sweep_s = time.perf_counter() - t0
        direct.append(direct_run(False))
        direct_saved.append(direct_run(True))
    gen, gen_saved = sum(direct) / 2, sum(direct_saved) / 2
    return {
        "images": len(params),
        "direct_generate_s": [round(x, 3) for x in direct],
        "direct_generate_and_save_s": [round(x, 3) for x in direct_saved],
        "sweep_s": round(sweep_s, 3),
        "overhead_vs_generate_pct": round(100 * (sweep_s / gen - 1), 2),
        "overhead_vs_generate_and_save_pct": round(100 * (sweep_s / gen_saved - 1), 2),
    }


def worker(args) -> int:
    """One process of the scaling run (RANK / WORLD_SIZE / LOCAL_RANK in the environment)."""
    from zturbo.sweep.runner import Launch, run_sweep

    launch = Launch.from_env()
    device = f"cuda:{launch.local_rank}" if torch.cuda.is_available() else "cpu"
    engine = build_engine(args.model, device)
    plan = make_plan(args)
    engine.generate(plan.items[0].params)  # warm-up
    sync(engine)
    barrier = Path(args.worker_dir)
    (barrier / f"ready{launch.rank}").write_text("1")
    while len(list(barrier.glob("ready*"))) < launch.world_size:  # start together, after every load
        time.sleep(0.01)
    start = time.time()
    run_sweep(plan, barrier / "sweep", loader=lambda quant: engine, model=args.model, launch=launch, quiet=True,
              poll_seconds=0.05)
    end = time.time()
    (barrier / f"times{launch.rank}.json").write_text(json.dumps({"start": start, "end": end}))
    return 0


def scaling(args, processes: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for rank in range(processes):
            env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(processes), LOCAL_RANK=str(rank),
                       OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
            cmd = [sys.executable, __file__, "--worker-dir", tmp, "--model", args.model, "--size", args.size,
                   "--steps", str(args.steps), "--images", str(args.images)]
            procs.append(subprocess.Popen(cmd, env=env))
        codes = [p.wait() for p in procs]
        if any(codes):
            raise SystemExit(f"a worker failed: exit codes {codes}")
        times = [json.loads((Path(tmp) / f"times{r}.json").read_text()) for r in range(processes)]
        wall = max(t["end"] for t in times) - min(t["start"] for t in times)
    return {"processes": processes, "images": args.images, "wall_s": round(wall, 3),
            "images_per_min": round(60 * args.images / wall, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="random", help="random (real architecture, random weights), tiny, or a hub id/folder")
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--processes", default="1,2", help="process counts for the scaling run (one GPU each)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--worker-dir", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_dir:
        return worker(args)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    card = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu ({platform.machine()}, {os.cpu_count()} cores)"
    from zturbo.machine import versions as _versions

    out = {"card": card, "gpus": torch.cuda.device_count(), "model": args.model, "size": args.size,
           "steps": args.steps, "command": " ".join(sys.argv), "versions": _versions()}
    out["overhead"] = overhead(args, device)
    print(json.dumps(out["overhead"]), flush=True)
    out["scaling"] = []
    for n in (int(x) for x in args.processes.split(",")):
        if device == "cuda" and n > torch.cuda.device_count():
            print(f"skipping {n} processes: {torch.cuda.device_count()} GPU(s)", file=sys.stderr)
            continue
        out["scaling"].append(scaling(args, n))
        print(json.dumps(out["scaling"][-1]), flush=True)
    if len(out["scaling"]) >= 2:
        base = out["scaling"][0]["images_per_min"]
        out["speedup"] = {str(s["processes"]): round(s["images_per_min"] / base, 3) for s in out["scaling"]}
        print(f"speedup: {out['speedup']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
