"""The input gate of a Durable Object (bindings/durable_objects/isolate/gate.py), seen over
HTTP through a real `edgelet dev`: two objects that call each other at the same time both
answer (the gate opens while an object awaits another, as on Cloudflare), in one isolate
and across isolates; a cycle inside blockConcurrencyWhile() (which keeps the gate shut)
re-enters the object that started it; a call to an object whose gate stays shut ends at
request_timeout_ms with an error naming both objects; a ctx.waitUntil task that calls
back into its object waits for the gate instead of running beside the event that holds it."""

from __future__ import annotations

import concurrent.futures as cf
import time
from typing import Any

CONFIG = """
    [[workers]]
    name = "app"
    main = "app.py"
    durable_objects.bindings = [
        { name = "P", class_name = "Player" },
        { name = "R", class_name = "Remote", script_name = "other" },
    ]
    [workers.limits]
    request_timeout_ms = 3000

    [[workers]]
    name = "other"
    main = "other.py"
    durable_objects.bindings = [
        { name = "R", class_name = "Remote" },
        { name = "P", class_name = "Player", script_name = "app" },
    ]
    [workers.limits]
    request_timeout_ms = 3000
"""

PLAYER = """
    import asyncio
    from urllib.parse import urlsplit
    from workers import DurableObject, Response, WorkerEntrypoint

    class Player(DurableObject):
        def __init__(self, ctx, env):
            super().__init__(ctx, env)
            self.trace = []

        async def ping(self, other):
            await asyncio.sleep(0.3)   # both pings are in flight before either calls
            return await self.env.P.getByName(other).hello()

        async def ping_locked(self, other):
            async def call():
                return await self.env.P.getByName(other).hello()
            return await self.ctx.blockConcurrencyWhile(call)

        async def hello(self):
            return f"hi from {self.ctx.id.name}"

        async def lock(self, _):
            async def later():   # from outside any event: holds the gate for good
                await self.ctx.blockConcurrencyWhile(lambda: asyncio.sleep(3600))
            self.ctx.waitUntil(later())
            return "locked"

        async def ask(self, other):
            return await self.env.P.getByName(other).hello()

        async def remote_ping(self, other):
            await asyncio.sleep(0.3)
            return await self.env.R.getByName(other).ping_back(self.ctx.id.name)

        async def kick(self):
            async def later():
                await asyncio.sleep(0.3)
                await self.env.P.getByName(self.ctx.id.name).critical("background")
            self.ctx.waitUntil(later())
            return "kicked"

        async def critical(self, who):
            self.trace.append(f"enter {who}")
            await asyncio.sleep(0.6)
            self.trace.append(f"exit {who}")

        async def get_trace(self):
            return self.trace

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            op, *args = urlsplit(request.url).path.strip("/").split("/")
            try:
                if op == "hello":
                    return Response(await self.env.P.getByName(args[0]).hello())
                if op == "critical":
                    await self.env.P.getByName(args[0]).critical("request")
                    return Response("done")
                if op == "trace":
                    return Response.json(await self.env.P.getByName(args[0]).get_trace())
                if op == "kick":
                    return Response(await self.env.P.getByName(args[0]).kick())
                return Response(await getattr(self.env.P.getByName(args[0]), op)(args[1]))
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=500)
"""

REMOTE = """
    from workers import DurableObject, Response, WorkerEntrypoint

    class Remote(DurableObject):
        async def ping_back(self, player):
            return await self.env.P.getByName(player).hello()

        async def hello(self):
            return "remote hi"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("other")
"""

FILES = {"wrangler_like.toml": CONFIG, "app.py": PLAYER, "other.py": REMOTE}


def _both(s: Any, a: str, b: str) -> tuple[Any, Any, float]:
    t = time.monotonic()
    with cf.ThreadPoolExecutor(2) as ex:
        r1, r2 = ex.map(lambda p: s.get(p, timeout=20), [a, b])
    return r1, r2, time.monotonic() - t


def test_two_objects_calling_each_other_both_answer(dev: Any) -> None:
    s = dev(FILES)
    assert s.get("/ping/a/b").text == "hi from b"   # warm both objects
    assert s.get("/ping/b/a").text == "hi from a"
    r1, r2, took = _both(s, "/ping/a/b", "/ping/b/a")
    assert (r1.status_code, r1.text) == (200, "hi from b"), r1.text
    assert (r2.status_code, r2.text) == (200, "hi from a"), r2.text
    assert took < 2.5, f"mutual calls took {took:.1f} s (the gate was not opened)"
    assert s.get("/hello/a").text == "hi from a"


def test_a_cycle_through_another_isolate_answers(dev: Any) -> None:
    """Player (isolate app) -> Remote (isolate other) -> the same Player, routed by the host."""
    s = dev(FILES)
    t = time.monotonic()
    r = s.get("/remote_ping/a/r1")
    assert (r.status_code, r.text) == (200, "hi from a"), r.text
    assert time.monotonic() - t < 2.5


def test_cycle_inside_block_concurrency_while_reenters(dev: Any) -> None:
    s = dev(FILES)
    r = s.get("/ping_locked/c/d")   # c (gate shut) -> d -> c: runs at once in c
    assert (r.status_code, r.text) == (200, "hi from d"), r.text


def test_a_call_to_an_object_that_never_opens_ends_with_a_clear_error(dev: Any) -> None:
    s = dev(FILES)
    assert s.get("/lock/y/_").text == "locked"
    t = time.monotonic()
    r = s.get("/ask/x/y")
    took = time.monotonic() - t
    assert r.status_code == 500, (r.status_code, r.text)
    # the inner call fails first (x.ask could still answer before the host's 504)
    assert r.text.startswith("TimeoutError: Durable Object Player 'y' did not answer hello() "
                             "within 2.43 s (request_timeout_ms is 3000 ms"), r.text
    assert "called from Player 'x'" in r.text, r.text
    assert "blockConcurrencyWhile" in r.text, r.text   # says what to look for
    assert took < 6, took
    assert s.get("/hello/x").text == "hi from x"   # the caller is not stuck


def test_wait_until_task_waits_for_the_gate(dev: Any) -> None:
    s = dev(FILES)
    assert s.get("/kick/k").text == "kicked"
    time.sleep(0.1)
    assert s.get("/critical/k").text == "done"   # runs 0.1 .. 0.7 s; background calls at 0.3 s
    time.sleep(1.0)
    trace = s.get("/trace/k").json()
    assert trace == ["enter request", "exit request", "enter background", "exit background"], trace
