"""The worker hands finished generations to the saver thread: the GPU never waits for PNG encoding,
a job is done only once its files exist, jobs end in order, and shutdown writes what was made."""

from __future__ import annotations

import json
import threading

import pytest
from PIL import Image
from server_support import wait_for

import zturbo.engine
import zturbo.server.preview
from zturbo.params import GenerationParams
from zturbo.server.history import History
from zturbo.server.jobs import DONE, Job, JobQueue

HOLD = 5  # seconds a held write waits before giving up: only ever reached when the test fails


class Recording:
    """The tiny engine, logging when each generation starts."""

    def __init__(self, engine, log):
        self.engine, self.log = engine, log

    def generate(self, params, **kw):
        self.log.append(("generate", params.prompt))
        return self.engine.generate(params, **kw)


def params(prompt, **kw):
    return GenerationParams(prompt=prompt, seed=1, width=32, height=32, steps=kw.pop("steps", 1), **kw)


@pytest.fixture
def queue(tiny_engine, tmp_path):
    made = []

    def make(engine):
        q = JobQueue(engine, tmp_path, History(tmp_path))
        q.start()
        made.append(q)
        return q

    yield make
    for q in made:
        q.shutdown()
        q.history.close()


def complete_png(path):
    with Image.open(path) as im:
        im.load()  # a truncated file fails here
        return json.loads(im.text["zturbo"])


def test_a_job_is_done_only_once_its_png_is_complete(tiny_engine, queue, monkeypatch):
    seen = []
    q = queue(tiny_engine)
    real_emit = Job.emit

    def emit(self, kind, *a, **kw):
        if kind == DONE:  # what a client can see the moment the job says done
            seen.append([complete_png(q.out_dir / name)["params"]["seed"] for name in self.images])
        return real_emit(self, kind, *a, **kw)

    monkeypatch.setattr(Job, "emit", emit)
    job = q.submit(params("a fox"), n=2)
    wait_for(lambda: job.finished, what="the job")
    assert job.state == DONE and seen == [[1, 2]]


def test_the_worker_starts_the_next_generation_while_the_last_png_is_written(tiny_engine, queue, monkeypatch):
    log = []
    next_started = threading.Event()
    real_save = zturbo.engine.save_png

    def slow_save(image, target, recipe):
        log.append(("write starts", recipe["params"]["prompt"]))
        if recipe["params"]["prompt"] == "first":
            next_started.wait(HOLD)  # a slow disk: held until the GPU has moved on
        out = real_save(image, target, recipe)
        log.append(("written", recipe["params"]["prompt"]))
        return out

    class Signalling(Recording):
        def generate(self, params, **kw):
            if params.prompt == "second":
                next_started.set()
            return super().generate(params, **kw)

    monkeypatch.setattr(zturbo.engine, "save_png", slow_save)
    q = queue(Signalling(tiny_engine, log))
    first, second = q.submit(params("first")), q.submit(params("second"))
    wait_for(lambda: second.finished, what="the second job")
    ends = [first.finished_at <= second.finished_at, first.state, second.state]
    assert log.index(("generate", "second")) < log.index(("written", "first"))
    assert ends == [True, DONE, DONE]  # still in the order they ran
    assert all((q.out_dir / j.images[0]).is_file() for j in (first, second))


@pytest.fixture
def held_write(monkeypatch):
    """PNG writes wait, once started (`held` set), until the test sets `release`."""
    held, release = threading.Event(), threading.Event()
    real_save = zturbo.engine.save_png

    def held_save(image, target, recipe):
        held.set()
        release.wait(HOLD)
        return real_save(image, target, recipe)

    monkeypatch.setattr(zturbo.engine, "save_png", held_save)
    return held, release


def test_shutdown_writes_a_generated_job_whose_png_is_still_pending(tiny_engine, queue, held_write):
    held, release = held_write
    q = queue(tiny_engine)
    job = q.submit(params("a fox"))
    assert held.wait(HOLD)
    stopper = threading.Thread(target=q.shutdown)
    stopper.start()
    assert job.state != DONE and not list(q.out_dir.glob("*.png"))  # its write is pending, shutdown has begun
    release.set()
    stopper.join(HOLD)
    assert not stopper.is_alive() and job.state == DONE
    assert complete_png(q.out_dir / job.images[0])["params"]["prompt"] == "a fox"


def test_previews_are_drawn_for_readers_not_for_every_pass(tiny_engine, queue, monkeypatch):
    drawn = []
    real = zturbo.server.preview.preview_data_url
    monkeypatch.setattr(zturbo.server.preview, "preview_data_url", lambda latents: drawn.append(1) or real(latents))
    q = queue(tiny_engine)
    job = q.submit(params("a fox", steps=4))
    wait_for(lambda: job.finished, what="the job")
    assert len(drawn) == 1  # the last pass's preview, kept for a late reader; nobody asked for the other 3
    steps = [e for e in job.events_since(0) if e["event"] == "step"]
    assert [bool(e["data"].get("preview")) for e in steps] == [False, False, False, True]
    assert len(drawn) == 1


def test_a_failed_write_fails_that_job_alone_and_says_why(tiny_engine, queue, monkeypatch):
    real_save = zturbo.engine.save_png

    def full_disk(image, target, recipe):
        if recipe["params"]["prompt"] == "first":
            raise OSError(28, "No space left on device")
        return real_save(image, target, recipe)

    monkeypatch.setattr(zturbo.engine, "save_png", full_disk)
    q = queue(tiny_engine)
    first, second = q.submit(params("first")), q.submit(params("second"))
    wait_for(lambda: second.finished, what="the second job")
    assert (first.state, first.error_type) == ("failed", "server_error") and "No space left" in first.error
    assert second.state == DONE and (q.out_dir / second.images[0]).is_file()


def test_the_queue_stats_count_a_job_whose_png_is_being_written(tiny_engine, queue, held_write):
    """Between the GPU and done a job is neither running nor completed: /api/health says it is saving."""
    held, release = held_write
    q = queue(tiny_engine)
    job = q.submit(params("a fox"))
    assert held.wait(HOLD)
    stats = q.stats()
    assert (stats["running"], stats["saving"], stats["completed"]) == (None, 1, 0)
    release.set()
    wait_for(lambda: job.finished, what="the job")
    stats = q.stats()
    assert (stats["saving"], stats["completed"]) == (0, 1)
