"""The --fp8 policy's cache key on a local diffusers folder: its transformer shards hashed one after another
(as before) against side by side (hashing.cached_sha256_many). On the device machine:
    PYTHONPATH=src python3 bench/weights_hash.py --json $OUT/weights_hash.json
(writes bench/serve.py's random real-architecture model first if it is not there; the files are then in
the page cache, as they are right after a load).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from serve import random_model  # noqa: E402  (a sibling script)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "zturbo-random-model"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    folder = Path(random_model(Path(args.model_dir)))
    os.environ["ZTURBO_CACHE"] = tempfile.mkdtemp(prefix="zturbo-hash-bench-")
    from zturbo.hashing import cached_sha256_many, sha256_file

    shards = sorted((folder / "transformer").glob("*.safetensors"))
    res = {"shards": len(shards), "gb": round(sum(f.stat().st_size for f in shards) / 1e9, 2), "cpus": os.cpu_count()}
    t0 = time.perf_counter()
    one = [sha256_file(f) for f in shards]
    res["one_after_another_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    many = cached_sha256_many(shards)
    res["side_by_side_s"] = round(time.perf_counter() - t0, 2)
    assert many == one
    print(json.dumps(res), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
