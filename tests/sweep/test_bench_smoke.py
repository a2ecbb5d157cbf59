"""bench/sweep_overhead.py runs (it is meant for a GPU; here the tiny model on the CPU, numbers unused)."""

import argparse
import importlib.util
from pathlib import Path


def test_overhead_benchmark_runs_on_the_tiny_model():
    path = Path(__file__).resolve().parents[2] / "bench" / "sweep_overhead.py"
    spec = importlib.util.spec_from_file_location("sweep_overhead", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    args = argparse.Namespace(model="tiny", size="32x32", steps=2, images=2)
    out = bench.overhead(args, "cpu")
    assert out["images"] == 2
    assert out["sweep_s"] > 0 and min(out["direct_generate_s"]) > 0
    assert set(out) >= {"overhead_vs_generate_pct", "overhead_vs_generate_and_save_pct"}
