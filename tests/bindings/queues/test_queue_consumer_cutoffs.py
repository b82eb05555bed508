"""A consumer invocation cut off from outside: by a save of its code under ``edgelet dev``
(not counted as an attempt: on Cloudflare a redeploy lets the running invocation finish on
the old version), or by the wall-time limit (15 minutes on Cloudflare; counted, and the
batch retried). Before, a save mid-batch burned an attempt, and a consumer that blocked
held its batch in flight for as long as request_timeout_ms allowed, with no word of a limit."""

from __future__ import annotations

import time
from typing import Any

import pytest

CONFIG = """
[[workers]]
name = "web"
main = "web.py"
queues.producers = [{ binding = "JOBS", queue = "jobs" }]

[[workers]]
name = "back"
main = "back.py"

[[workers.queues.consumers]]
queue = "jobs"
max_batch_size = 1
max_batch_timeout = 0
max_retries = %d
retry_delay = 0
"""

WEB = '''
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        await self.env.JOBS.send(await request.text(), contentType="text")
        return Response("sent")
'''

SLOW = '''
import asyncio
from workers import WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def queue(self, batch, env, ctx):
        for m in batch.messages:
            print(f"{VERSION} started {m.body} attempts={m.attempts}")
            if m.body == "slow" and VERSION == "v1":
                await asyncio.sleep(SLEEP)
            print(f"{VERSION} consumed {m.body} attempts={m.attempts}")
'''


def consumer(version: str, sleep: float) -> str:
    return f"VERSION = {version!r}\nSLEEP = {sleep!r}\n" + SLOW


def stats(s: Any) -> dict[str, Any]:
    return s.api("GET", "/queues/jobs")["result"]


def settled(s: Any, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (got := stats(s))["backlog"] and time.monotonic() < deadline:
        time.sleep(0.1)
    return got


def test_a_save_while_a_batch_runs_does_not_cost_an_attempt(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG % 0, "web.py": WEB, "back.py": consumer("v1", 30)})
    assert s.post("/", content="slow").text == "sent"
    s.wait_for_log("v1 started slow attempts=1", 10)
    (s.cwd / "back.py").write_text(consumer("v2", 0))  # the save cuts the running batch off
    s.wait_for_log("v2 consumed slow attempts=1", 15)  # max_retries = 0: one attempt in all
    got = settled(s)
    assert (got["backlog"], got["dead"]) == (0, 0), got
    assert "dropped message" not in s.logs(), s.logs()
    assert "reloaded while handling a batch of 1 message(s)" in s.logs()


def test_a_consumer_past_its_wall_time_limit_is_cut_off_and_retried(
        dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_QUEUE_CONSUMER_TIMEOUT", "1.5")
    s = dev({"wrangler_like.toml": CONFIG % 1, "web.py": WEB, "back.py": consumer("v1", 3600)})
    started = time.monotonic()
    assert s.post("/", content="slow").text == "sent"
    line = s.wait_for_log("within its wall-time limit of 1.5 s", 10)
    assert "Worker 'back'" in line and "queue jobs" in line, line
    s.wait_for_log("v1 started slow attempts=2", 10)  # retried once the limit cut it off
    s.wait_for_log("dropped message", 10)  # ... and its second attempt is its last
    assert time.monotonic() - started < 10
    assert "v1 consumed slow" not in s.logs()
    # the handler was cancelled, not left running: the Worker still takes the next message
    assert s.post("/", content="quick").text == "sent"
    s.wait_for_log("v1 consumed quick attempts=1", 10)
    assert settled(s)["backlog"] == 0
