"""The job queue: one worker thread owns the engine (one GPU, one generation at a time).

A job is accepted only if the queue has room (else QueueFull -> HTTP 503). The worker takes jobs
in order, reports every pass as an event, and saves a job's images only when all of them are
done: a cancelled or failed job leaves nothing on disk. Any error fails that job alone.

The worker never waits for the disk: it hands a generated job to the saver thread (PNG encode with
the recipe, atomic write, history row) and starts the next generation at once. Every job ends on
the saver thread, so jobs end in the order they ran, and one is "done" only once its files exist.
Shutdown writes what was already generated before it returns: nothing made is lost.

Events reach async code (SSE streams, the OpenAI endpoint waiting for its result) through
asyncio.Events set with loop.call_soon_threadsafe: no polling, no thread per waiter.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as _dt
import logging
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .. import defaults
from ..errors import Cancelled, OutOfMemory, ZTurboError
from ..params import GenerationParams, seed_series
from .history import History
from .preview import Snapshot

log = logging.getLogger("zturbo.server")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    pass


class Job:
    def __init__(self, params: GenerationParams, n: int, loras: tuple = ()):
        self.id = secrets.token_hex(8)
        self.params = params
        self.loras = loras  # ((path, scale), ...) from the --lora-dir, for this job only
        self.n = n
        self.seeds = seed_series(params.seed, n)  # InvalidParams when they would pass 2^64-1: never queued
        self.state = QUEUED
        self.created = time.time()
        self.started: float | None = None
        self.finished_at: float | None = None
        self.step = 0  # passes done over all n images
        self.total = params.passes * n  # an input image's strength skips the schedule's first steps
        self.images: list[str] = []
        self.recipes: list[dict[str, Any]] = []
        self.warnings: list[str] = list(params.notes())  # the CLI's notes, then the engine's (NaN, truncation...)
        self.error: str | None = None
        self.error_type: str | None = None
        self.cancel_requested = threading.Event()
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []
        self._watchers: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def view(self) -> dict[str, Any]:
        """What GET /api/jobs/{id} returns. Seeds as strings: JSON numbers lose precision above 2^53."""
        return {
            "id": self.id, "state": self.state, "step": self.step, "total": self.total, "n": self.n,
            "seed": str(self.params.seed), "params": {**self.params.to_dict(), "seed": str(self.params.seed)},
            "images": [{"name": n, "url": f"/api/images/{n}", "seed": str(r["params"]["seed"])}
                       for n, r in zip(self.images, self.recipes)],
            "warnings": list(self.warnings), "error": self.error, "error_type": self.error_type,
            "created": self.created, "started": self.started, "finished": self.finished_at,
        }

    # -- events ---------------------------------------------------------------------------------
    def emit(self, kind: str, preview: Snapshot | None = None, ends: bool = False, **data: Any) -> None:
        with self._lock:
            if ends:  # the state and its event change together: a reader never sees one without the other
                self.state = kind
            if kind == "step" and self._events and self._events[-1]["event"] == "step":
                self._events[-1]["preview"] = None  # keep only the latest preview in memory
            self._events.append({"event": kind, "data": {"id": self.id, "state": self.state, **data},
                                 "preview": preview})
            watchers = list(self._watchers)
        for loop, ev in watchers:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # that loop is closed: its waiter is gone
                pass

    def events_since(self, index: int) -> list[dict[str, Any]]:
        """Events from `index` on, a step's preview drawn now (it may wait for that pass on the GPU:
        call it off the event loop)."""
        with self._lock:
            events = [(e["event"], e["data"], e["preview"]) for e in self._events[index:]]
        return [{"event": kind, "data": {**data, "preview": snap.data_url()} if snap else data}
                for kind, data, snap in events]

    def has_events_since(self, index: int) -> bool:
        with self._lock:
            return len(self._events) > index

    def draw_last_preview(self) -> None:
        """A finished job keeps its last preview as a small JPEG, not as latents in host memory."""
        with self._lock:
            snap = next((e["preview"] for e in reversed(self._events) if e["event"] == "step"), None)
        if snap is not None:
            snap.data_url()

    def watch(self) -> asyncio.Event:
        ev = asyncio.Event()
        with self._lock:
            self._watchers.append((asyncio.get_running_loop(), ev))
        return ev

    def unwatch(self, ev: asyncio.Event) -> None:
        with self._lock:
            self._watchers = [w for w in self._watchers if w[1] is not ev]

    async def wait_finished(self) -> None:
        ev = self.watch()
        try:
            while not self.finished:
                await ev.wait()
                ev.clear()
        finally:
            self.unwatch(ev)


def image_name(job: Job, index: int, seed: int) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{stamp}_{seed}_{job.id}-{index}.png"


class JobQueue:
    """A bounded FIFO of jobs and the one worker thread that runs them."""

    def __init__(self, engine, out_dir: Path, history: History, bound: int = defaults.SERVER_QUEUE_BOUND,
                 previews: bool = True):
        self.engine = engine
        self.out_dir = Path(out_dir)
        self.history = history
        self.bound = bound
        self.previews = previews
        self.jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self.running: Job | None = None
        self.saving = 0  # jobs done on the GPU whose images are still being written (between running and done)
        self.completed = 0
        self.failed = 0
        self.peak_waiting = 0  # the most jobs ever waiting at once (never above the bound)
        self._pending: collections.deque[Job] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="zturbo-worker", daemon=True)
        # one thread: jobs end in the order they ran (the PNG encoder itself uses every core)
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zturbo-save")
        self._save_slots = threading.BoundedSemaphore(defaults.SERVER_PENDING_SAVES)

    def start(self) -> None:
        self._thread.start()

    # -- the API side ---------------------------------------------------------------------------
    def submit(self, params: GenerationParams, n: int = 1, loras: tuple = ()) -> Job:
        job = Job(params, n, loras)
        with self._cond:
            if self._stopping:
                raise QueueFull("the server is shutting down")
            if len(self._pending) >= self.bound:
                raise QueueFull(f"the queue is full ({self.bound} jobs waiting): retry later")
            self._pending.append(job)
            self.peak_waiting = max(self.peak_waiting, len(self._pending))
            self._remember(job)
            position = len(self._pending)
            self._cond.notify()
        job.emit("queued", position=position)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self.jobs.get(job_id)

    def cancel(self, job: Job) -> bool:
        """Cancel a queued or running job; False if it had already finished."""
        with self._cond:
            if job.finished:
                return False
            job.cancel_requested.set()
            if job.state == QUEUED:
                self._pending.remove(job)
                self._finish(job, CANCELLED)
                return True
        return True  # running: the worker stops it at the end of the current pass

    def stats(self) -> dict[str, Any]:
        with self._cond:
            return {"waiting": len(self._pending), "bound": self.bound,
                    "running": self.running.id if self.running else None, "saving": self.saving,
                    "peak_waiting": self.peak_waiting, "completed": self.completed, "failed": self.failed}

    def shutdown(self, timeout: float = defaults.SERVER_SHUTDOWN_GRACE_S) -> None:
        """Refuse new jobs, cancel the waiting ones and the running one, wait for the worker, then for
        the saver: images already generated are written, never dropped."""
        self.begin_shutdown()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._saver.shutdown(wait=True)

    def begin_shutdown(self) -> None:
        with self._cond:
            self._stopping = True
            while self._pending:
                job = self._pending.popleft()
                job.cancel_requested.set()
                self._finish(job, CANCELLED)
            if self.running is not None:
                self.running.cancel_requested.set()
            self._cond.notify_all()

    # -- the worker side ------------------------------------------------------------------------
    def _remember(self, job: Job) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > defaults.SERVER_JOBS_KEPT:
            oldest = next(iter(self.jobs.values()))
            if not oldest.finished:
                break
            self.jobs.popitem(last=False)

    def _finish(self, job: Job, state: str, error: str | None = None, error_type: str | None = None) -> None:
        job.error, job.error_type = error, error_type
        job.finished_at = time.time()
        job.emit(state, ends=True, images=list(job.images), warnings=list(job.warnings), error=error,
                 error_type=error_type)

    def _next(self) -> Job | None:
        with self._cond:
            while not self._pending and not self._stopping:
                self._cond.wait()
            if self._stopping:
                return None
            job = self._pending.popleft()
            job.state, job.started = RUNNING, time.time()
            self.running = job
            return job

    def _work(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            job.emit("started")
            try:
                results = self._run(job)
            except Cancelled:
                self._hand_off(job, CANCELLED)
            except ZTurboError as exc:
                kind = "out_of_memory" if isinstance(exc, OutOfMemory) else "generation_failed"
                self._hand_off(job, FAILED, str(exc), kind)
            except Exception as exc:  # a bug must fail this job, never the worker
                log.exception("job %s failed", job.id)
                self._hand_off(job, FAILED, f"{type(exc).__name__}: {exc}", "server_error")
            else:
                self._hand_off(job, DONE, results=results)

    def _hand_off(self, job: Job, state: str, error: str | None = None, error_type: str | None = None,
                  results: list | tuple = ()) -> None:
        """The GPU is free for the next job; this one ends on the saver thread, after its files are written."""
        with self._cond:
            self.running = None
            self.saving += 1
        self._save_slots.acquire()  # at most SERVER_PENDING_SAVES jobs' images wait in memory
        try:
            self._saver.submit(self._end, job, state, error, error_type, results)
        except RuntimeError:  # the saver has shut down (this worker outlived shutdown's grace): end it here
            self._end(job, state, error, error_type, results)

    def _end(self, job: Job, state: str, error: str | None, error_type: str | None, results: list | tuple) -> None:
        try:
            if state == DONE:
                try:
                    self._save(job, results)
                except Cancelled:
                    state = CANCELLED
                except Exception as exc:  # a full disk fails this job, never the saver
                    log.exception("job %s: writing its images failed", job.id)
                    state, error, error_type = FAILED, f"{type(exc).__name__}: {exc}", "server_error"
            job.draw_last_preview()
            with self._cond:
                self.saving -= 1
                if state == DONE:
                    self.completed += 1
                elif state == FAILED:
                    self.failed += 1
                self._finish(job, state, error, error_type)
        finally:
            self._save_slots.release()

    def _save(self, job: Job, results: list) -> None:
        """All images made: only now does anything touch the disk (atomically, one file at a time)."""
        if job.cancel_requested.is_set():
            raise Cancelled("cancelled")
        for i, result in enumerate(results):
            name = image_name(job, i, result.params[0].seed)
            result.save([self.out_dir / name])
            self.history.add(name, job.id, result.recipes[0])
            job.images.append(name)
            job.recipes.append(result.recipes[0])

    def _run(self, job: Job) -> list:
        if job.cancel_requested.is_set():
            raise Cancelled("cancelled before it started")
        results = []
        for i, seed in enumerate(job.seeds):
            if job.cancel_requested.is_set():
                raise Cancelled("cancelled")
            done_before = i * job.params.passes

            def on_step(step: int, total: int, latents, i=i, done_before=done_before) -> None:
                job.step = done_before + step
                job.emit("step", Snapshot(latents) if self.previews else None, step=job.step, total=job.total,
                         image=i, image_step=step, image_steps=total)

            p = job.params if i == 0 else job.params.replace(seed=seed)
            result = self.engine.generate(p, on_step=on_step, should_cancel=job.cancel_requested.is_set,
                                          **({"loras": job.loras} if job.loras else {}))
            results.append(result)
            job.warnings += [w for w in result.warnings if w not in job.warnings]
        if job.cancel_requested.is_set():
            raise Cancelled("cancelled")
        return results
