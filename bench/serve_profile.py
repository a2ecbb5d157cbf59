"""Where the server's worker spends time beyond Engine.generate: cProfile over the worker thread only.

Runs N small jobs through the real JobQueue (tiny model, CPU, previews on, no HTTP) and prints the
worker's seconds outside Engine.generate per job, then the profile's zturbo lines. Anything here is
time the GPU would sit idle between two generations. Issue 14, measured on 2 busy CPU cores, 40 jobs
at 256x256, 4 passes: before the saver thread 14-16 ms per job (PNG encode + atomic write 11.8 ms, pass
previews 6.9 ms for 4 passes, history row 2.2 ms); after it 0.75 ms (taking the next job off the queue,
a Snapshot per pass). At 1024x1024 the PNG is 16x the pixels, and each preview also synced the GPU.
    PYTHONPATH=src python3 bench/serve_profile.py --jobs 40 --size 256
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import threading
from pathlib import Path

from zturbo.engine import Engine
from zturbo.params import GenerationParams
from zturbo.server.history import History
from zturbo.server.jobs import JobQueue


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    args = ap.parse_args()
    engine = Engine.load(model="tiny", device="cpu")
    p = GenerationParams(prompt="a fox", seed=0, width=args.size, height=args.size, steps=args.steps)
    engine.generate(p)  # first-call costs out of the way
    out = Path(tempfile.mkdtemp(prefix="zturbo-serve-profile-"))
    queue = JobQueue(engine, out, History(out), bound=args.jobs)
    prof = cProfile.Profile()
    work = queue._work

    def profiled() -> None:
        prof.enable()
        try:
            work()
        finally:
            prof.disable()

    queue._thread = threading.Thread(target=profiled, name="zturbo-worker", daemon=True)
    queue.start()
    jobs = [queue.submit(p.replace(seed=1 + i)) for i in range(args.jobs)]
    idle = threading.Event()
    while not all(j.finished for j in jobs):
        idle.wait(0.05)
    queue.shutdown()
    stats = pstats.Stats(prof)
    worker = next(v[3] for k, v in stats.stats.items() if k[2] == "_work")
    generate = sum(v[3] for k, v in stats.stats.items() if k[2] == "generate" and k[0].endswith("engine.py"))
    print(f"worker {worker:.3f} s, Engine.generate {generate:.3f} s: "
          f"{1000 * (worker - generate) / args.jobs:.2f} ms per job outside generate")
    stats.sort_stats("cumulative").print_stats(r"zturbo/(server|metadata|pngwrite|atomic)", 15)


if __name__ == "__main__":
    main()
