"""A Worker's own endless D1 query (a recursive CTE without an end) no longer stops the host:
each database runs its calls on a thread of its own, so other Workers, another database and
the control API are answered meanwhile, and the statement is interrupted at D1's query limit
(30 s; EDGELET_D1_QUERY_TIMEOUT here) with D1's error naming the database and the limit.
Before, the query ran on the host's event loop: every Worker, the control API and Ctrl-C
waited for it, for ever."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

CONFIG = """
    [[workers]]
    name = "app"
    main = "app.py"
    d1_databases = [{ binding = "DB", database_name = "slow", database_id = "slow-db" },
                    { binding = "OTHER", database_name = "quick", database_id = "quick-db" }]

    [[workers]]
    name = "other"
    main = "other.py"
"""

APP = r'''
from workers import Response, WorkerEntrypoint

ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/endless"):
            try:
                await self.env.DB.prepare(ENDLESS).all()
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=500)
            return Response("finished?")
        if request.url.endswith("/quick"):
            row = await self.env.OTHER.prepare("SELECT 41 + 1 AS n").first()
            return Response(str(row["n"]))
        return Response("hello")
'''

OTHER = r'''
from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("other worker")
'''


def test_an_endless_query_leaves_the_host_free_and_ends_at_the_limit(
        dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_D1_QUERY_TIMEOUT", "3")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP, "other.py": OTHER}, "--in-memory")
    answer: dict[str, Any] = {}

    def endless() -> None:
        started = time.monotonic()
        answer["resp"] = httpx.get(s.url + "/endless", headers={"host": "app.localhost"}, timeout=60)
        answer["took"] = time.monotonic() - started

    runner = threading.Thread(target=endless)
    runner.start()
    time.sleep(0.7)   # the query is running now
    assert runner.is_alive()
    started = time.monotonic()
    assert httpx.get(s.url + "/", headers={"host": "app.localhost"}, timeout=2).text == "hello"
    assert httpx.get(s.url + "/quick", headers={"host": "app.localhost"}, timeout=2).text == "42"
    assert httpx.get(s.url + "/", headers={"host": "other.localhost"}, timeout=2).text == "other worker"
    workers = httpx.get(s.url + "/cdn-cgi/edgelet/api/workers", timeout=2)
    assert workers.status_code == 200, workers.text
    assert time.monotonic() - started < 2.0
    assert runner.is_alive()   # all answered while the query still ran

    runner.join(30)
    assert not runner.is_alive()
    resp, took = answer["resp"], answer["took"]
    assert resp.status_code == 500, resp.text
    assert resp.text.startswith("D1Error: D1_ERROR: D1 DB exceeded its CPU time limit and was reset."), resp.text
    assert "(env.DB.all() on D1 database 'slow-db': the statement ran longer than 3 s, D1's limit" \
        in resp.text, resp.text
    assert 2.5 < took < 15, took
    # the database goes on serving once the statement was interrupted
    assert httpx.get(s.url + "/quick", headers={"host": "app.localhost"}, timeout=5).text == "42"


def test_ctrl_c_during_an_endless_query_stops_at_once(dev: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGELET_D1_QUERY_TIMEOUT", "60")
    s = dev({"wrangler_like.toml": CONFIG, "app.py": APP, "other.py": OTHER}, "--in-memory")
    runner = threading.Thread(target=lambda: httpx.get(s.url + "/endless", headers={"host": "app.localhost"},
                                                       timeout=30), daemon=True)
    runner.start()
    time.sleep(0.7)
    started = time.monotonic()
    s.proc.send_signal(2)   # SIGINT, as Ctrl-C
    s.proc.wait(20)
    assert time.monotonic() - started < 5, s.logs()[-2000:]


async def test_a_call_that_outgrows_its_inline_share_runs_again_whole_on_the_thread() -> None:
    """A call starts on the event loop while its database is idle; past INLINE_BUDGET_S its
    statement is interrupted (SQLite undoes it, the batch rolls back) and the whole call runs
    again on the database's thread: its writes land once, the loop keeps turning meanwhile,
    and a call made meanwhile waits its turn behind it."""
    from edgelet.bindings.d1.storage import D1Store

    store = D1Store(None)
    await store.acall("x", "env.DB", "exec", ["CREATE TABLE t (v INTEGER)"])
    slow = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
            "SELECT count(*) FROM c")
    batch = [["INSERT INTO t VALUES (1)", []], [slow, []], ["INSERT INTO t VALUES (2)", []]]
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.02)
    call = asyncio.ensure_future(store.acall("x", "env.DB", "query", [batch, "batch"]))
    await asyncio.sleep(0.05)
    after = asyncio.ensure_future(store.acall("x", "env.DB", "query", [[["SELECT v FROM t", []]], "all"]))
    out = await call
    seen = await after
    ticking.cancel()
    assert out["results"][1][1] == [[2000000]]
    assert seen["results"][0][1] == [[1], [2]]      # written once, and read after the batch
    assert store.get("x")._thread is not None       # it moved off the loop
    assert max(gaps) < 0.2, max(gaps)               # the loop turned while it ran
    store.close()
