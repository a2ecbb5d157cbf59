"""Sweeps: the article's six experiments and any grid, resumable and sharded.

    specs.py     the article's experiments (values, sizes, file names) and the robot prompt
    grid.py      --vary KEY=V1,V2 (A1111 ranges) and TOML experiment files
    plan.py      Item / Experiment / Plan: what a sweep makes, plan.json, the dry-run estimate
    runner.py    one engine per precision, resume, sharding, failures, disk checks
    manifest.py  the folder on disk: plan.json, manifest(.rank<N>).jsonl, load_sweep()
"""

from .manifest import Sweep, load_sweep, merge

__all__ = ["Sweep", "load_sweep", "merge"]
