"""The server against the engine (issue 14): is `zturbo serve` as fast as Engine.generate?

First stock diffusers' images/s on the same weights (ZImagePipeline, prompt string in, PIL out). Then for
each mode (plain, then --fast): the engine's own images/s (Engine.generate in a loop, the same load
options and warm-up as the server), then `zturbo serve` as a subprocess: seconds from its "zturbo serving"
line to the first image, then images/s and p50 latency with 1 and with 4 concurrent clients. Clients use
POST /v1/images/generations with the default response_format b64_json (what an OpenAI client does: one
request, the PNG in the answer), one prompt, a new seed per request (both sides reuse the cached prompt
embedding). Random weights of the real architecture (zturbo.benchmark.randmodel), saved once as a diffusers
folder and loaded as a user loads one. On the device machine (~6 minutes on an H200):
    PYTHONPATH=src python3 bench/serve.py --json bench/serve_H200.json
CPU smoke run (tiny model, small images): PYTHONPATH=src python3 bench/serve.py --quick
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

READY = "zturbo serving"  # the line `zturbo serve` prints once the model is loaded and warmed up
PROMPT = "a red fox in the snow, golden hour, photograph"


def random_model(folder: Path) -> str:
    """The real architecture with random weights, as a diffusers folder (written once, then reused)."""
    if (folder / "model_index.json").is_file():
        return str(folder)
    import torch

    from zturbo.benchmark.randmodel import build_pipeline

    t0 = time.perf_counter()
    pipe = build_pipeline(torch.device("cuda"))
    pipe.save_pretrained(folder)
    del pipe
    gc.collect()
    torch.cuda.empty_cache()
    print(f"wrote the random model to {folder} in {time.perf_counter() - t0:.0f} s", flush=True)
    return str(folder)


def engine_rate(model: str, fast: bool, device: str | None, size: tuple[int, int], n: int, warm: bool) -> dict:
    """Engine.generate in a loop: the ceiling the server is measured against."""
    import torch

    from zturbo.cli.common import warm_up
    from zturbo.loading import LoadOptions, load
    from zturbo.params import GenerationParams

    engine = load(LoadOptions(model=model, device=device, fast="lossless" if fast else None))
    if warm:
        warm_up(engine, [size], quiet=True)  # what `serve --warm-up` does
    p = GenerationParams(prompt=PROMPT, seed=0, width=size[0], height=size[1])
    engine.generate(p)  # the prompt's embedding cached, the first-call costs paid: as in a running server
    times = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        engine.generate(p.replace(seed=1 + i))
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    out = {"images": n, "images_per_s": round(n / wall, 3), "p50_s": round(statistics.median(times), 4),
           "speed": [str(f) for f in engine.speed], "device": engine.device_name, "versions": engine.versions}
    del engine
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def stock_rate(model: str, device: str | None, size: tuple[int, int], n: int) -> dict:
    """Stock diffusers on the same weights: ZImagePipeline called as its docs show (prompt string in, PIL image
    out, bf16 on the GPU), in a loop: the figure every zturbo number is read against."""
    import torch
    from diffusers import ZImagePipeline

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if model == "tiny":
        from zturbo.models import tiny

        pipe = ZImagePipeline(**tiny.build_components())
    else:
        pipe = ZImagePipeline.from_pretrained(model, torch_dtype=torch.bfloat16)
    pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)

    def one(seed: int) -> None:
        pipe(prompt=PROMPT, height=size[1], width=size[0], num_inference_steps=8, guidance_scale=0.0,
             generator=torch.Generator(dev).manual_seed(seed)).images[0]

    one(0)  # first-call costs, as the engine's loop pays them before timing
    times = []
    t0 = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        one(1 + i)
        times.append(time.perf_counter() - t)
    wall = time.perf_counter() - t0
    del pipe
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"images": n, "images_per_s": round(n / wall, 3), "p50_s": round(statistics.median(times), 4)}


class Served:
    """`zturbo serve` in a subprocess; the times of its lines as they arrive."""

    def __init__(self, cmd: list[str], env: dict):
        self.cmd = cmd
        self.lines: list[tuple[float, str]] = []
        self.ready = threading.Event()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.perf_counter(), line.rstrip()))
            if line.startswith(READY):
                self.ready.set()
        self.ready.set()  # it exited: wait_ready says so

    def wait_ready(self, timeout: float) -> float:
        if not self.ready.wait(timeout) or self.proc.poll() is not None:
            self.stop()
            tail = "\n".join(line for _, line in self.lines[-20:])
            raise SystemExit(f"zturbo serve did not become ready:\n{tail}")
        return next(t for t, line in self.lines if line.startswith(READY))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def generate(url: str, size: tuple[int, int], seed: int, retry_until: float = 0.0) -> float:
    """One POST /v1/images/generations; its latency. Until `retry_until`, a refused connection is retried
    (the ready line comes just before uvicorn listens)."""
    body = json.dumps({"prompt": PROMPT, "size": f"{size[0]}x{size[1]}", "seed": seed}).encode()
    req = urllib.request.Request(url + "/v1/images/generations", body, {"Content-Type": "application/json"})
    t = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                data = json.loads(r.read())
            break
        except urllib.error.URLError as exc:
            if isinstance(exc, urllib.error.HTTPError) or time.perf_counter() > retry_until:
                raise
            time.sleep(0.02)
    png = base64.b64decode(data["data"][0]["b64_json"])
    assert png.startswith(b"\x89PNG"), "the answer is not a PNG"
    return time.perf_counter() - t


def clients(url: str, size: tuple[int, int], n: int, k: int, seed0: int) -> dict:
    """n images from k clients, each sending its next request when the last one is answered."""
    seeds = iter(range(seed0, seed0 + n))
    lock = threading.Lock()
    latencies: list[float] = []

    def client() -> None:
        while True:
            with lock:
                seed = next(seeds, None)
            if seed is None:
                return
            dt = generate(url, size, seed)
            with lock:
                latencies.append(dt)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(k) as pool:
        for f in [pool.submit(client) for _ in range(k)]:
            f.result()
    wall = time.perf_counter() - t0
    return {"clients": k, "images": n, "images_per_s": round(n / wall, 3),
            "p50_s": round(statistics.median(latencies), 4), "max_s": round(max(latencies), 4)}


def serve_rates(model: str, fast: bool, device: str | None, size: tuple[int, int], n: int, port: int) -> dict:
    out = tempfile.mkdtemp(prefix="zturbo-serve-bench-")
    cmd = [sys.executable, "-m", "zturbo", "serve", "--model", model, "--port", str(port), "--out", out,
           "--queue", "64"]
    if device:
        cmd += ["--device", device]
    if fast:
        cmd += ["--fast", "--warm-up", f"{size[0]}x{size[1]}"]
    t_start = time.perf_counter()
    srv = Served(cmd, dict(os.environ))
    try:
        ready = srv.wait_ready(900)
        url = f"http://127.0.0.1:{port}"
        first = generate(url, size, 10_000, retry_until=ready + 60)
        first_image_s = time.perf_counter() - ready
        res = {"command": " ".join(["zturbo", *cmd[3:]]), "start_to_ready_s": round(ready - t_start, 1),
               "first_image_after_ready_s": round(first_image_s, 3), "first_request_latency_s": round(first, 3),
               "log": [line for _, line in srv.lines if not line.startswith("INFO")][:20],
               "one_client": clients(url, size, n, 1, 20_000), "four_clients": clients(url, size, n, 4, 30_000)}
    finally:
        srv.stop()
    return res


def versions() -> dict:
    import diffusers
    import torch

    import zturbo

    return {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "zturbo": zturbo.__version__}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a diffusers folder (default: the random real-architecture "
                                                  "model, written to --model-dir the first time)")
    ap.add_argument("--model-dir", default=os.path.join(tempfile.gettempdir(), "zturbo-random-model"))
    ap.add_argument("--modes", nargs="+", choices=("plain", "fast"), default=["plain", "fast"])
    ap.add_argument("--images", type=int, default=16, help="images per measurement (default 16)")
    ap.add_argument("--size", default="1024x1024")
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--quick", action="store_true", help="CPU smoke run: --model tiny, 64x64, 4 images, plain")
    ap.add_argument("--json", default=None, help="write the results here (default: print them)")
    args = ap.parse_args()

    from zturbo.geometry import parse_size

    device = None
    if args.quick:
        args.model, device, args.images, args.size, args.modes = "tiny", "cpu", 4, "64x64", ["plain"]
    size = parse_size(args.size)
    model = args.model or random_model(Path(args.model_dir))
    res = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "versions": versions(),
           "size": args.size, "images": args.images, "client_api": "POST /v1/images/generations (b64_json)",
           "model": model if args.model else "random weights, real architecture (zturbo.benchmark.randmodel)",
           "modes": {}}
    res["stock"] = stock_rate(model, device, size, args.images)
    print(json.dumps({"stock": res["stock"]}), flush=True)
    for mode in args.modes:
        fast = mode == "fast"
        eng = engine_rate(model, fast, device, size, args.images, warm=fast)
        res.setdefault("card", eng["device"])
        srv = serve_rates(model, fast, device, size, args.images, args.port)
        res["modes"][mode] = {
            "engine": eng, "server": srv,
            "server_over_engine_1_client": round(srv["one_client"]["images_per_s"] / eng["images_per_s"], 3),
            "server_over_engine_4_clients": round(srv["four_clients"]["images_per_s"] / eng["images_per_s"], 3),
            "server_4_clients_over_stock": round(srv["four_clients"]["images_per_s"] / res["stock"]["images_per_s"], 3),
        }
        print(json.dumps({mode: {k: v for k, v in res["modes"][mode].items() if k != "engine"}}, indent=1), flush=True)
    text = json.dumps(res, indent=1)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
        print(f"wrote {args.json}")
    else:
        print(text)


if __name__ == "__main__":
    main()
