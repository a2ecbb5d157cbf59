"""Speed benchmark of issue 6: stock diffusers vs zturbo --fast / FP8 / GGUF modes, one run, one card.

The same as `zturbo bench` (code: src/zturbo/benchmark/harness.py). On the device machine:
    PYTHONPATH=src python3 bench/speed.py --json bench/speed_<card>.json
Results: bench/speed_*.json (each names its card, versions and command).
"""

import sys

from zturbo.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
