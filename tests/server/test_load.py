"""A bounded load test on loopback: 50 concurrent clients, 200 requests, tiny model at 32x32 and one
pass, all sent at once. Every request is answered; 503s come only once the queue is at its bound;
no job is lost or run twice; the server is healthy afterwards. (No timings: what is asserted is
behaviour.)"""

from __future__ import annotations

import asyncio
import collections

import httpx
from server_support import wait_for

CLIENTS, REQUESTS, BOUND = 50, 200, 24


async def hammer(url: str, engine):
    """200 requests from 50 concurrent clients. The engine starts held (its first job parks), so the
    queue surely overflows on any machine; it is let go after 20 refusals and the rest runs freely."""
    todo = collections.deque(range(REQUESTS))
    answers: dict[int, httpx.Response] = {}
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def worker():
            while todo:
                i = todo.popleft()
                body = {"prompt": f"load {i}", "seed": i, "size": "32x32", "steps": 1}
                # one request in four waits for its image (OpenAI style); the others queue a job
                path = "/v1/images/generations" if i % 4 == 0 else "/api/jobs"
                answers[i] = r = await client.post(path, json=body)
                if r.status_code == 503 and sum(a.status_code == 503 for a in answers.values()) >= 20:
                    engine.release()

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return answers


def test_bounded_load_every_request_answered_nothing_lost_or_doubled(live_server, engine):
    srv = live_server(queue_bound=BOUND)
    engine.hold()
    answers = asyncio.run(hammer(srv.url, engine))
    assert sorted(answers) == list(range(REQUESTS))  # every request got an HTTP answer

    accepted, rejected = {}, []
    for i, r in answers.items():
        if r.status_code == 503:
            assert int(r.headers["Retry-After"]) > 0 and "queue is full" in r.json()["detail"]
            rejected.append(i)
        else:
            assert r.status_code == (200 if i % 4 == 0 else 202), (i, r.status_code, r.text)
            accepted[i] = r.json()
    assert len(rejected) >= 20 and len(accepted) > BOUND  # the queue filled up, and was used to its bound first

    client = httpx.Client(base_url=srv.url, timeout=30)
    job_ids = [a["id"] for i, a in accepted.items() if i % 4]
    assert len(set(job_ids)) == len(job_ids)
    for job_id in job_ids:
        job = wait_for(lambda: (j := client.get(f"/api/jobs/{job_id}").json())["state"] in ("done", "failed") and j)
        assert job["state"] == "done" and len(job["images"]) == 1

    # each accepted request ran exactly once; each refused one never ran
    for i in range(REQUESTS):
        assert engine.runs[(f"load {i}", i)] == (1 if i in accepted else 0), i
    history = client.get("/api/history", params={"limit": 200}).json()
    assert history["total"] == len(accepted)
    assert sorted(int(item["seed"]) for item in history["items"]) == sorted(accepted)

    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["queue"]["waiting"] == 0 and health["queue"]["failed"] == 0
    assert health["queue"]["peak_waiting"] <= BOUND
    assert health["queue"]["peak_waiting"] == BOUND  # refusals came only from a full queue
    r = client.post("/v1/images/generations", json={"prompt": "after", "size": "32x32", "steps": 1})
    assert r.status_code == 200
