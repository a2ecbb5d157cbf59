"""The user's path for the five experiments: `zturbo sweep steps guidance seeds aspect resolution`, the command
a user types, plain against --fast and --fp8, each a new process writing its PNGs, manifest and recipes.

bench/fast_shapes.py times the same 50 images inside one process through the engine; this runs the CLI as a
subprocess per variant and times it from launch to exit (interpreter start, model load, every compile,
every PNG). "Cold" gives the variant an empty compile cache (TORCHINDUCTOR_CACHE_DIR) and an empty zturbo
cache (ZTURBO_CACHE: the --fp8 calibration); "-warm" runs the same tier again on the caches its cold run
filled: what a user's second sweep pays. Random weights of the real architecture, saved once as a diffusers
folder (bench/serve.py's random_model) and loaded as a user loads one. On the device machine:
    PYTHONPATH=src python3 bench/sweep_cli.py --json $OUT/sweep_cli.json
CPU smoke run (the tiny model, small frames; the numbers mean nothing):
    PYTHONPATH=src python3 bench/sweep_cli.py --model tiny --variants plain --extra=--size=64x112
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

sys.path.insert(0, str(Path(__file__).parent))
from serve import random_model  # noqa: E402  (a sibling script)

EXPERIMENTS = ["steps", "guidance", "seeds", "aspect", "resolution"]
FLAGS = {"plain": [], "fast": ["--fast"], "fp8": ["--fp8"]}


def run(model: str, variant: str, caches: dict, extra: list[str]) -> dict:
    tier = variant.removesuffix("-warm")
    if not variant.endswith("-warm") or tier not in caches:
        caches[tier] = tempfile.mkdtemp(prefix=f"zturbo-bench-{tier}-")
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": os.path.join(caches[tier], "inductor"),
           "ZTURBO_CACHE": os.path.join(caches[tier], "zturbo")}
    out = tempfile.mkdtemp(prefix=f"zturbo-sweep-{variant}-")
    cmd = [sys.executable, "-m", "zturbo", "sweep", *EXPERIMENTS, "--model", model, "--out", out, *FLAGS[tier], *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    pngs = sorted(Path(out).rglob("*.png"))
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.strip() and "|" not in ln]  # no bars
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
    return {"command": " ".join(["zturbo", *cmd[3:]]), "rc": proc.returncode, "wall_s": round(wall, 2),
            "pngs": len(pngs), "lines": lines[-12:]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="tiny, a diffusers folder, or (default) the random real-architecture "
                                                   "model written to --model-dir")
    ap.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "zturbo-random-model"))
    ap.add_argument("--variants", nargs="+", default=["plain", "fast", "fp8", "fp8-warm"],
                    choices=["plain", "fast", "fast-warm", "fp8", "fp8-warm"])
    ap.add_argument("--extra", action="append", default=[], help="one more argument for every sweep (repeatable)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    model = args.model or random_model(Path(args.model_dir))
    res = {"command": " ".join(["python3", *sys.argv]), "python": platform.python_version(), "model": model,
           "experiments": EXPERIMENTS, "variants": {}}
    try:
        import torch

        if torch.cuda.is_available():
            res["card"], res["torch"] = torch.cuda.get_device_name(0), torch.__version__
    except ImportError:
        pass
    caches: dict[str, str] = {}
    for variant in args.variants:
        r = res["variants"][variant] = run(model, variant, caches, args.extra)
        print(variant, {k: r[k] for k in ("rc", "wall_s", "pngs")}, flush=True)
        base = res["variants"].get("plain")
        if base:
            res["vs_plain"] = {v: round(r["wall_s"] / base["wall_s"], 3) for v, r in res["variants"].items()}
        if args.json:  # after each variant: a run cut short keeps what it measured
            Path(args.json).write_text(json.dumps(res, indent=1))
    print(json.dumps(res.get("vs_plain")), flush=True)


if __name__ == "__main__":
    main()
