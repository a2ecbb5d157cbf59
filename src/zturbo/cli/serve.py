"""zturbo serve: the local image server and web UI."""

from __future__ import annotations

import argparse
import secrets
import socket
import sys

from .. import defaults
from ..errors import InvalidParams
from . import common

HELP = "run the local image server and web UI (OpenAI-compatible API, job queue, live progress)"
DESCRIPTION = f"""Serve Z-Image-Turbo on this machine: a web UI at http://127.0.0.1:{defaults.SERVER_PORT}/, an
OpenAI-compatible POST /v1/images/generations, and a job API with live progress (/docs lists it).

examples:
  zturbo serve                                  # loopback only, port {defaults.SERVER_PORT}
  zturbo serve --model tiny --out /tmp/zt       # offline demo model (noise by design)
  zturbo serve --quant q8 --port 8000
  zturbo serve --lora-dir ~/loras                # requests pick LoRAs from that folder (GET /api/loras)
  zturbo serve --host 0.0.0.0 --token "$(openssl rand -hex 16)" --allow-origin http://mybox:{defaults.SERVER_PORT}

secure by default: loopback only; Host and Origin headers must name this server (or an
--allow-origin), so other websites cannot drive it; with --token every API call needs
'Authorization: Bearer TOKEN' (the web UI asks for it once). One GPU worker runs the jobs in
order; a full queue answers 503 with Retry-After. Images and history.sqlite go to --out."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("server")
    s.add_argument("--host", default=defaults.SERVER_HOST,
                   help=f"address to bind (default {defaults.SERVER_HOST}: this machine only)")
    s.add_argument("--port", type=int, default=defaults.SERVER_PORT, help=f"default {defaults.SERVER_PORT}")
    s.add_argument("--token", default=None,
                   help="require 'Authorization: Bearer TOKEN' on every API call ('random' prints a new one)")
    s.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                   help="another origin allowed to call the API, e.g. http://mybox:7860 (repeatable); its host "
                        "name is then accepted in the Host header too, and CORS opens for it alone")
    s.add_argument("--out", default=defaults.OUTPUT_DIR,
                   help=f"output folder for images and history.sqlite (default ./{defaults.OUTPUT_DIR}/)")
    s.add_argument("--queue", type=int, default=defaults.SERVER_QUEUE_BOUND,
                   help=f"jobs allowed to wait (default {defaults.SERVER_QUEUE_BOUND}); more get HTTP 503")
    s.add_argument("--max-megapixels", type=float, default=defaults.MAX_MEGAPIXELS,
                   help=f"refuse sizes above this (default {defaults.MAX_MEGAPIXELS:g})")
    s.add_argument("--max-upload", type=float, default=defaults.SERVER_MAX_UPLOAD_BYTES / 2**20, metavar="MB",
                   help="largest input image or mask a client may upload (/v1/images/edits, /api/uploads), in MiB "
                        "(default %(default)g); larger ones get HTTP 413 without being stored")
    s.add_argument("--lora-dir", default=None, metavar="DIR",
                   help="let each request pick LoRAs (the 'loras' field, the web UI's picker) from the .safetensors "
                        "files directly in DIR, nowhere else; they run as unfused adapters (each adds its low-rank "
                        "matmuls to every pass of the jobs that use it) and a job without LoRAs gets the base "
                        "model's pixels. Not with --fast or --gguf-mode bf16/fp8/auto (they rewrite the layers "
                        "adapters wrap); --lora FILE:SCALE merges a LoRA for every job instead")
    s.add_argument("--warm-up", default=f"{defaults.WIDTH}x{defaults.HEIGHT}", metavar="WxH[,WxH]",
                   help="with --fast/--fp8: generate at these sizes before saying ready, so that the first request "
                        "does not pay the compile (default %(default)s; other sizes then only capture a CUDA graph); "
                        "without --fast on a GPU: one 1-pass image at the first size (the GPU's first-call set-up); "
                        "'none' skips it")
    common.add_model_arguments(p)


def warnings_for(host: str, token: str | None, allow_origins: list[str] | None = None) -> list[str]:
    from ..server.security import WILDCARD_HOSTS, is_loopback

    out = []
    if host in WILDCARD_HOSTS and not allow_origins:
        out.append(f"note: bound to {host or 'all addresses'}, but only loopback Host names are answered; "
                   "add --allow-origin http://NAME:PORT for each name clients use to reach this machine")
    if is_loopback(host) or token:
        return out
    return out + [
        "!" * 78,
        f"WARNING: bound to {host} WITHOUT --token: anyone who can reach this port can run the GPU,",
        "read every image and fill the disk. Add --token (e.g. --token random), or bind 127.0.0.1.",
        "!" * 78,
    ]


def check_port(host: str, port: int) -> None:
    """Fail in a second, not after a model load, when the address cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InvalidParams(f"cannot listen on {host}:{port} ({exc.strerror}): pick another --port, "
                                "or stop what is using it") from None


def _warm_up_sizes(text: str, max_megapixels: float) -> list[tuple[int, int]]:
    from .. import geometry

    if text.strip().lower() == "none":
        return []
    try:
        sizes = [geometry.parse_size(x) for x in text.split(",")]
        for w, h in sizes:
            geometry.check_size(w, h, max_megapixels)
    except InvalidParams as exc:
        raise InvalidParams(f"--warm-up: {exc}") from None
    return sizes


def run(args) -> int:
    if not 1 <= args.port <= 65535:
        raise InvalidParams(f"--port {args.port} is outside 1..65535")
    if not args.max_upload > 0:
        raise InvalidParams(f"--max-upload must be a positive number of MiB, got {args.max_upload:g}")
    if args.queue < 1:
        raise InvalidParams(f"--queue must be at least 1, got {args.queue}")
    token = secrets.token_urlsafe(18) if args.token == "random" else args.token
    if token is not None and not token.strip():
        raise InvalidParams("--token is empty")
    from ..server import create_app
    from ..server.runner import make_server
    from ..server.security import normalize_origin

    for origin in args.allow_origin or ():  # in a second, not after a model load (create_app checks again)
        try:
            normalize_origin(origin)
        except ValueError as exc:
            raise InvalidParams(f"--allow-origin: {exc}") from None
    options = common.load_options(args)  # bad model options fail before the port check and the load
    lora_folder = None
    if args.lora_dir is not None:
        from ..lora_switch import SPEED_REFUSED, LoraFolder

        if options.speeds_up_gguf:  # --fast or --gguf-mode bf16|fp8|auto: the weights adapters wrap get rewritten
            raise InvalidParams(SPEED_REFUSED)
        lora_folder = LoraFolder(args.lora_dir)
    warm_sizes = _warm_up_sizes(args.warm_up, args.max_megapixels)
    check_port(args.host, args.port)
    engine = common.load_engine(options)
    common.warm_up(engine, warm_sizes)
    app = create_app(engine, args.out, token=token, allow_origins=args.allow_origin, bound_host=args.host,
                     queue_bound=args.queue, max_megapixels=args.max_megapixels,
                     max_upload=int(args.max_upload * 2**20), lora_dir=args.lora_dir)
    for line in warnings_for(args.host, token, args.allow_origin):
        print(line, file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"zturbo serving {engine.info.label} on http://{host}:{args.port}/  (API docs: /docs; Ctrl-C stops)",
          file=sys.stderr, flush=True)
    if lora_folder is not None:
        print(f"per-request LoRAs from {lora_folder.root} ({len(lora_folder.names())} files): unfused adapters, "
              "each adds its low-rank matmuls to every pass of a job that uses it", file=sys.stderr, flush=True)
    if args.token == "random":
        print(f"token: {token}", file=sys.stderr, flush=True)
    try:
        make_server(app, args.host, args.port).run()
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl-C after its graceful shutdown: the normal way to stop
        pass
    print("zturbo serve stopped: no job was left half-written", file=sys.stderr)
    return 0
