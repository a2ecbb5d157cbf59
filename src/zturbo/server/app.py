"""The app factory: create_app(engine, out_dir, ...) -> FastAPI.

Routes (all JSON unless said):
  GET  /                           the web UI (static/, plain HTML/CSS/JS)
  GET  /docs, /openapi.json        API docs (rendered by our own page: no CDN)
  GET  /api/health                 model, precision, device, queue, limits, size presets, the ControlNet (or null)
  POST /api/jobs                   queue a job -> 202 {id, ...}; 503 + Retry-After when full
  GET  /api/loras                  the LoRA files of --lora-dir (name, bytes, sha256), for a request's `loras`
  POST /api/uploads                store an input image or mask (multipart `file`, `role`) -> {name, sha256, ...}
  GET  /api/uploads/{name}         a stored upload (the web UI's "use these settings" shows it again)
  GET  /api/jobs/{id}              its state
  GET  /api/jobs/{id}/events       server-sent events: queued, started, step (with preview), done/failed/cancelled
  DELETE /api/jobs/{id}            cancel (queued or running); nothing of it is written
  GET  /api/images/{name}          a PNG from the output folder (never anything outside it)
  GET  /api/history                newest first, paged, each image with its recipe and CLI command
  POST /v1/images/generations      OpenAI-compatible, waits for the images
  POST /v1/images/edits            OpenAI-compatible image-to-image / inpainting (multipart image + mask), waits
  GET  /v1/models                  the one loaded model, for OpenAI clients that list models
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import reprlib
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from .. import __version__, defaults, geometry
from ..errors import InvalidParams
from ..inputs import ROLES
from ..metadata import generate_command
from . import uploads
from .history import MAX_OFFSET, History
from .jobs import CANCELLED, DONE, JobQueue, QueueFull
from .schemas import JobRequest, OpenAIImageRequest, edit_request, to_params
from .security import SecurityMiddleware, normalize_origin

STATIC = resources.files("zturbo.server") / "static"
ASPECTS = ("1:1", "4:3", "3:4", "3:2", "2:3", "16:9", "9:16")
MEGAPIXELS = (0.25, 0.5, 1.0, 2.0)


def error(status: int, message: str, kind: str, headers: dict | None = None) -> JSONResponse:
    """One error shape for both APIs: OpenAI's {"error": {...}} plus FastAPI's {"detail"}."""
    # a message may quote a lone surrogate the client sent (an unknown field's name): UTF-8 cannot carry it
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse({"detail": message, "error": {"message": message, "type": kind}}, status, headers=headers)


MAX_ERRORS_SAID = 3
QUERY_RANGES = {"offset": (0, MAX_OFFSET), "limit": (1, defaults.SERVER_HISTORY_MAX_PAGE)}
EXAMPLE_BODY = '{"prompt": "a red fox"}'


def body_error(cause: BaseException | None) -> str | None:
    """Why FastAPI could not parse a JSON body ("There was an error parsing the body" says nothing)."""
    if isinstance(cause, UnicodeDecodeError):
        return "the body is not valid JSON (it is not UTF-8 text)"
    if isinstance(cause, RecursionError):
        return "the body is not valid JSON (nested too deeply)"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return f"the body is not valid JSON (a number has more than {sys.get_int_max_str_digits()} digits)"
    return None


def schema_message(e: dict[str, Any], fields: list[str]) -> str:
    """One pydantic error as one line that names the field (and the allowed range for query params)."""
    kind, loc = e.get("type"), tuple(e.get("loc", ()))
    if kind == "json_invalid":  # its loc is a character offset: say what it means
        return (f"the body is not valid JSON ({e.get('ctx', {}).get('error', 'decode error')} "
                f"at character {loc[-1] if loc else '?'})")
    if loc == ("body",):
        if kind == "string_unicode":  # a field name holding a lone surrogate
            return f"unknown field {reprlib.repr(e.get('input'))} (the fields are {', '.join(fields)})"
        if kind == "missing":
            return f"the body is empty: send a JSON object, e.g. {EXAMPLE_BODY}, with Content-Type: application/json"
        return (f"the body must be a JSON object, e.g. {EXAMPLE_BODY}, sent with Content-Type: application/json "
                f"(got {reprlib.repr(e.get('input'))})")
    where = ".".join(str(x) for x in loc[1:]) if loc and loc[0] in ("body", "query", "path") else ".".join(map(str, loc))
    if kind == "extra_forbidden":
        return f"unknown field {reprlib.repr(where)} (the fields are {', '.join(fields)})"
    if loc and loc[0] == "query" and where in QUERY_RANGES:
        lo, hi = QUERY_RANGES[where]
        return f"{where} must be a whole number in {lo}..{hi}, got {reprlib.repr(e.get('input'))}"
    return f"{where}: {e.get('msg')}" if where else str(e.get("msg"))


def safe_image_path(out_dir: Path, name: str) -> Path | None:
    """The PNG called `name` inside out_dir, after resolving links; None for anything else."""
    if not name or "/" in name or "\\" in name or "\0" in name or name.startswith(".") or not name.endswith(".png"):
        return None
    root = out_dir.resolve()
    try:
        path = (root / name).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def b64_file(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def upload_doc(file: str, **fields: str) -> dict[str, Any]:
    """The OpenAPI shape of a multipart upload route (its form is read by hand, for the size cap)."""
    props: dict[str, Any] = {file: {"type": "string", "format": "binary"}}
    for name, text in fields.items():
        props[name] = {"type": "string", "description": text, **({"format": "binary"} if name == "mask" else {})}
    schema = {"type": "object", "required": [file], "properties": props}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def cli_command(recipe: dict[str, Any]) -> str:
    """The `zturbo generate` line that makes this image again."""
    return generate_command(recipe["params"], recipe.get("model", {}), loras=recipe.get("loras"),
                            controlnet=recipe.get("controlnet"))


def precision(model: dict[str, Any]) -> str:
    """What the UI shows: the GGUF quant, or the weights' dtype for unquantised weights."""
    quant, dtype = model.get("quant"), model.get("dtype", "bfloat16")
    return f"{quant} (compute {dtype})" if quant == "gguf" or quant in defaults.GGUF_FILES else dtype


def history_item(row: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    p = row["recipe"]["params"]
    return {
        "id": row["id"], "name": row["name"], "url": f"/api/images/{row['name']}", "job_id": row["job_id"],
        "created": row["created"], "seed": str(p["seed"]), "prompt": p["prompt"], "width": p["width"],
        "height": p["height"], "steps": p["steps"], "guidance": p["guidance"],
        "missing": not (out_dir / row["name"]).is_file(), "precision": precision(row["recipe"].get("model", {})),
        "command": cli_command(row["recipe"]), "recipe": row["recipe"],
    }


def remove_partial_files(out_dir: Path) -> None:
    """Temp files of atomic writes cut short by a crash (atomic.py names them .NAME.png.XXXX.part)."""
    for p in [*out_dir.glob(".*.png.*.part"), *(out_dir / uploads.FOLDER).glob(".*.part")]:
        with contextlib.suppress(OSError):
            p.unlink()


def create_app(engine, out_dir: str | Path = defaults.OUTPUT_DIR, *, token: str | None = None,
               allow_origins: list[str] | tuple[str, ...] = (), bound_host: str | None = defaults.SERVER_HOST,
               queue_bound: int = defaults.SERVER_QUEUE_BOUND, max_body: int = defaults.SERVER_MAX_BODY_BYTES,
               max_megapixels: float = defaults.MAX_MEGAPIXELS, previews: bool = True,
               max_upload: int = defaults.SERVER_MAX_UPLOAD_BYTES, lora_dir: str | Path | None = None) -> FastAPI:
    try:
        allow_origins = [normalize_origin(o) for o in allow_origins]
    except ValueError as exc:
        raise InvalidParams(f"--allow-origin: {exc}") from None
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidParams(f"cannot use {out_dir} as the output folder: {exc.strerror}") from None
    remove_partial_files(out_dir)
    lora_folder = None
    if lora_dir is not None:
        from ..lora_switch import SPEED_REFUSED, LoraFolder

        if getattr(getattr(engine, "options", None), "speeds_up_gguf", False):
            raise InvalidParams(SPEED_REFUSED)
        lora_folder = LoraFolder(lora_dir)
    history = History(out_dir)
    jobs = JobQueue(engine, out_dir, history, bound=queue_bound, previews=previews)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        jobs.start()
        try:
            yield
        finally:
            # cancel what is queued and running; the worker writes nothing half-done
            await asyncio.get_running_loop().run_in_executor(None, jobs.shutdown)
            history.close()

    app = FastAPI(title="zturbo", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Z-Image-Turbo on your own GPU: an OpenAI-compatible image API, a job queue "
                              "with live progress, and a web UI at /.")
    app.state.jobs, app.state.history, app.state.engine, app.state.out_dir = jobs, history, engine, out_dir
    if allow_origins:
        from fastapi.middleware.cors import CORSMiddleware

        # added first, so it sits inside the security middleware: only allowlisted origins reach it
        app.add_middleware(CORSMiddleware, allow_origins=list(allow_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(SecurityMiddleware, token=token, allow_origins=allow_origins, bound_host=bound_host,
                       max_body=max_body, max_upload=max_upload)

    # -- errors ---------------------------------------------------------------------------------
    @app.exception_handler(InvalidParams)
    async def _invalid(_, exc):
        return error(422, str(exc), "invalid_request_error")

    @app.exception_handler(uploads.UploadTooLarge)
    async def _too_large(_, exc):
        return error(413, str(exc), "body_too_large")

    @app.exception_handler(RequestValidationError)
    async def _schema(_, exc):
        fields = list(JobRequest.model_fields)
        parts = list(dict.fromkeys(schema_message(e, fields) for e in exc.errors()))
        listed = f" (the fields are {', '.join(fields)})"  # said once: several unknown fields stay one short line
        parts = parts[:1] + [p.removesuffix(listed) for p in parts[1:]]
        if len(parts) > MAX_ERRORS_SAID:  # a body of 10,000 unknown fields gets one line, not 10,000
            parts = parts[:MAX_ERRORS_SAID] + [f"and {len(parts) - MAX_ERRORS_SAID} more"]
        return error(422, "; ".join(parts) or "invalid request", "invalid_request_error")

    @app.exception_handler(QueueFull)
    async def _full(_, exc):
        return error(503, str(exc), "queue_full", {"Retry-After": str(defaults.SERVER_RETRY_AFTER_S)})

    @app.exception_handler(HTTPException)
    async def _http(_, exc):
        if exc.status_code == 400 and (message := body_error(exc.__cause__)):
            return error(400, message, "invalid_request_error")
        return error(exc.status_code, str(exc.detail), "not_found" if exc.status_code == 404 else "http_error")

    def job_or_404(job_id: str):
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {reprlib.repr(job_id)} (finished jobs are forgotten after a restart; "
                                     "their images stay in /api/history)")
        return job

    async def submit(req, image: str | None = None, mask: str | None = None, control: str | None = None) -> Any:
        params, n = to_params(req, max_megapixels, image, mask, control)
        if hasattr(engine, "check_controlnet"):  # a ControlNet and a control image go together: 422, never a failed job
            engine.check_controlnet(params)
        device = getattr(engine, "device", None)
        if params.rng == "cuda" and device is not None and device.type != "cuda":
            raise InvalidParams(f"rng 'cuda' needs a CUDA device; this server runs on {device.type}: use rng 'cpu'")
        return jobs.submit(params, n, await request_loras(req.loras))

    async def request_loras(value: Any) -> tuple:
        """A request's `loras` as (path, scale) pairs, each file checked against the model: refused, never queued."""
        if value is None or value == []:
            return ()
        if lora_folder is None:
            raise InvalidParams("this server takes no per-request LoRAs: start it with --lora-dir DIR (the folder "
                                "of your .safetensors LoRA files), or leave loras out")
        loras = lora_folder.request(value)
        for path, _ in loras:
            try:
                await run_in_threadpool(engine.check_lora, path)
            except InvalidParams as exc:  # lora.py names the server's path: the client knows the name
                raise InvalidParams(str(exc).replace(path, Path(path).name)) from None
        return loras

    # -- the web UI and docs --------------------------------------------------------------------
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(str(STATIC / "index.html"))

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(str(STATIC / "docs.html"))

    # -- native API -----------------------------------------------------------------------------
    # HEAD too, for uptime checks; left out of the schema (one operation per path and method there)
    @app.head("/api/health", include_in_schema=False)
    @app.get("/api/health", summary="Model, precision, device, queue, limits and the ControlNet")
    async def health():
        info = engine.info
        record = getattr(engine, "controlnet_record", None)  # serve --controlnet: the UI asks for a control image
        return {
            "status": "ok", "version": __version__, "model": info.to_dict(), "label": info.label,
            "precision": precision(info.to_dict()),
            "device": getattr(engine, "device_name", "unknown"), "queue": jobs.stats(),
            "images": history.count(),
            "defaults": {"steps": defaults.STEPS, "guidance": defaults.GUIDANCE,
                         "width": defaults.WIDTH, "height": defaults.HEIGHT, "strength": defaults.STRENGTH,
                         "control_scale": defaults.CONTROL_SCALE},
            "controlnet": None if record is None else {"name": record["name"], "variant": record["variant"],
                                                       "sha256": record["sha256"]},
            "limits": {"min_steps": defaults.MIN_STEPS, "max_steps": defaults.MAX_STEPS,
                       "max_guidance": defaults.GUIDANCE_MAX, "max_images": defaults.SERVER_MAX_IMAGES,
                       "max_megapixels": max_megapixels,
                       "size_multiple": defaults.SIZE_MULTIPLE, "max_body_bytes": max_body,
                       "max_upload_bytes": max_upload, "input_formats": list(defaults.INPUT_FORMATS)},
            "presets": {a: {f"{mp:g}": list(geometry.size_for_aspect(a, mp)) for mp in MEGAPIXELS} for a in ASPECTS},
        }

    @app.post("/api/jobs", status_code=202, summary="Queue a generation job")
    async def create_job(req: JobRequest):
        image = None if req.image is None else uploads.resolve(out_dir, req.image, "image")
        mask = None if req.mask is None else uploads.resolve(out_dir, req.mask, "mask")
        control = None if req.control_image is None else uploads.resolve(out_dir, req.control_image, "control_image")
        return (await submit(req, image, mask, control)).view()

    def multipart(request: Request, max_files: int, field: str):
        if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
            raise InvalidParams(f"{field} is missing: send a multipart/form-data body with the input image as the "
                                f"file field '{field}' (PNG, JPEG or WebP)")
        return request.form(max_files=max_files, max_fields=64)

    async def upload(out_dir: Path, form, fields: tuple[str, ...], role: str, required: bool) -> str | None:
        """The one file sent under `fields`, checked and stored in uploads/; its path."""
        files = [v for f in fields for v in form.getlist(f)]
        if not files:
            if required:
                raise InvalidParams(f"{role} is missing: send the input {role} as a file field '{fields[0]}' "
                                    "(PNG, JPEG or WebP)")
            return None
        if len(files) > 1 or not isinstance(files[0], UploadFile):
            raise InvalidParams(f"'{fields[0]}' must be one file (PNG, JPEG or WebP), sent as a file field")
        data = await uploads.read_capped(files[0], role, max_upload)
        return str(await run_in_threadpool(uploads.store, out_dir, data, role))

    @app.post("/api/uploads", summary="Store an input image, mask or control image for /api/jobs (multipart: file, role)",
              openapi_extra=upload_doc("file", role="'image' (default), 'mask' (a mask with transparency "
                                                    "is converted: transparent = repaint) or 'control'"))
    async def create_upload(request: Request):
        async with multipart(request, 1, "file") as form:
            role = form.get("role", "image")
            if role not in ROLES:
                raise InvalidParams(f"role must be image or mask, or control (a ControlNet's control image), "
                                    f"got {reprlib.repr(role)}")
            path = Path(await upload(out_dir, form, ("file",), role, True))
        return {"name": path.name, "role": role, "sha256": path.stem, "bytes": path.stat().st_size}

    @app.get("/api/uploads/{name}", summary="A stored upload (input image, mask or control image), by the name it was given",
             response_class=FileResponse)
    async def get_upload(name: str):
        try:
            path = uploads.resolve(out_dir, name, "upload")
        except InvalidParams:
            raise HTTPException(404, "no such upload") from None
        return FileResponse(path, media_type=uploads.MEDIA_TYPES[Path(path).suffix],
                            headers={"Cache-Control": "private, max-age=31536000, immutable"})

    @app.get("/api/loras", summary="The LoRA files of --lora-dir, for a request's loras field")
    async def list_loras():
        if lora_folder is None:
            return {"enabled": False, "loras": [],
                    "hint": "start the server with --lora-dir DIR to choose LoRAs per request"}
        return {"enabled": True, "loras": await run_in_threadpool(lora_folder.list)}

    @app.get("/api/jobs/{job_id}", summary="A job's state")
    async def get_job(job_id: str):
        return job_or_404(job_id).view()

    @app.delete("/api/jobs/{job_id}", summary="Cancel a queued or running job (its output is discarded)")
    async def cancel_job(job_id: str):
        job = job_or_404(job_id)
        if not jobs.cancel(job):
            return error(409, f"job {job_id} already {job.state}", "conflict")
        return {"id": job.id, "state": job.state, "cancel_requested": True}

    @app.get("/api/jobs/{job_id}/events", summary="Live progress as server-sent events")
    async def job_events(job_id: str, request: Request):
        job = job_or_404(job_id)

        async def stream():
            ev = job.watch()
            index = 0
            try:
                yield f"event: state\ndata: {json.dumps(job.view())}\n\n"
                while True:
                    for e in await run_in_threadpool(job.events_since, index):  # draws previews: off the loop
                        index += 1
                        yield f"event: {e['event']}\ndata: {json.dumps(e['data'])}\n\n"
                    if job.finished and not job.has_events_since(index):
                        return
                    try:
                        await asyncio.wait_for(ev.wait(), timeout=15)
                    except asyncio.TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield ": keep-alive\n\n"
                    ev.clear()
            finally:
                job.unwatch(ev)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/images/{name}", summary="An image from the output folder", response_class=FileResponse)
    async def image(name: str):
        path = safe_image_path(out_dir, name)
        if path is None:
            raise HTTPException(404, "no such image")
        # names are unique per job and never rewritten: the browser may keep them
        return FileResponse(str(path), media_type="image/png",
                            headers={"Cache-Control": "private, max-age=31536000, immutable"})

    @app.get("/api/history", summary="Generated images, newest first, with recipes")
    async def get_history(offset: int = Query(0, ge=0, le=MAX_OFFSET),
                          limit: int = Query(defaults.SERVER_HISTORY_PAGE, ge=1, le=defaults.SERVER_HISTORY_MAX_PAGE)):
        items = [history_item(r, out_dir) for r in history.page(offset, limit)]
        total = history.count()
        return {"total": total, "offset": offset, "limit": limit, "items": items,
                "next_offset": offset + len(items) if offset + len(items) < total else None}

    # -- OpenAI-compatible ----------------------------------------------------------------------
    @app.post("/v1/images/generations", summary="OpenAI-compatible image generation (waits for the result)")
    async def openai_generate(req: OpenAIImageRequest, request: Request):
        return await openai_result(await submit(req), req.response_format, request)

    @app.post("/v1/images/edits", summary="OpenAI-compatible image edit: image-to-image, or inpainting with a mask",
              openapi_extra=upload_doc("image", mask="inpainting mask: white = repaint; a mask with transparency "
                                                     "(OpenAI's convention) is converted, transparent = repaint",
                                       prompt="text", n="1..4", size="WxH (default: the image's size)",
                                       response_format="b64_json or url", strength="(0, 1]", seed="0..2^64-1",
                                       steps="passes", guidance="CFG", negative_prompt="text",
                                       resize="true: resize the image to size"))
    async def openai_edit(request: Request):
        async with multipart(request, 2, "image") as form:
            req = edit_request({k: v for k, v in form.multi_items() if isinstance(v, str)})
            image = await upload(out_dir, form, ("image", "image[]"), "image", True)
            mask = await upload(out_dir, form, ("mask",), "mask", False)
        return await openai_result(await submit(req, image, mask), req.response_format, request)

    async def openai_result(job, response_format: str, request: Request):
        await job.wait_finished()
        if job.state == CANCELLED:
            return error(409, "the job was cancelled (DELETE /api/jobs/{id}, or the server is stopping)", "cancelled")
        if job.state != DONE:
            return error(500, job.error or "generation failed", job.error_type or "generation_failed")
        data = []
        for name, recipe in zip(job.images, job.recipes):
            item: dict[str, Any] = {"revised_prompt": recipe["params"]["prompt"], "seed": str(recipe["params"]["seed"])}
            if response_format == "url":
                item["url"] = str(request.base_url) + f"api/images/{name}"
            else:
                item["b64_json"] = await run_in_threadpool(b64_file, out_dir / name)  # off the event loop
            data.append(item)
        return {"created": int(job.created), "data": data, "job_id": job.id, "warnings": job.warnings}

    @app.get("/v1/models", summary="The loaded model (for OpenAI clients that list models)")
    async def models():
        return {"object": "list", "data": [{"id": engine.info.model, "object": "model", "created": int(time.time()),
                                            "owned_by": "zturbo"}]}

    return app
