"""The workloads run on edgelet and on Miniflare, and how each is measured.

A ``Pair`` is one app (bench/apps/<app>/ for edgelet, bench/peers/miniflare/workers/<app>.mjs
for Miniflare) and the ``Step``s run against it, in order, on one freshly started server per
side per round. Each step returns figures keyed by ``Measure.key`` and is wrapped in its own
peak-RSS window.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from . import ws
from .load import Client, LoadError, RawClient, bounded, wait_until, wrk


@dataclass(frozen=True)
class Settings:
    """How hard and how long: ``quick`` checks the harness, ``full`` gives the figures."""

    mode: str
    rounds: int
    wrk_seconds: float
    warmup_seconds: float
    queue_messages: int
    queue_repeats: int
    wf_instances: int
    wf_steps: int
    e2e_runs: int
    dbos_seq_runs: int
    dbos_instances: int
    timeout: float
    ws_seconds: float = 10
    ws_fanout_rounds: int = 200
    ws_idle: int = 10_000

    @classmethod
    def quick(cls) -> "Settings":
        return cls("quick", rounds=1, wrk_seconds=3, warmup_seconds=1, queue_messages=10_000, queue_repeats=1,
                   wf_instances=200, wf_steps=10, e2e_runs=5, dbos_seq_runs=3, dbos_instances=100,
                   timeout=60, ws_seconds=3, ws_fanout_rounds=50, ws_idle=2_000)

    @classmethod
    def full(cls) -> "Settings":
        return cls("full", rounds=3, wrk_seconds=10, warmup_seconds=2, queue_messages=10_000, queue_repeats=3,
                   wf_instances=1000, wf_steps=10, e2e_runs=20, dbos_seq_runs=10, dbos_instances=1000,
                   timeout=300)


@dataclass(frozen=True)
class Measure:
    """One row of the table. ``higher``: bigger is better (throughput) or not (latency).

    ``target`` is on the ratio oriented so that higher favours edgelet (edgelet ÷ peer for
    throughput, peer ÷ edgelet for times); ``limit`` is an absolute ceiling on edgelet's own
    figure (hello-world p99 under 10 ms).
    """

    key: str
    label: str
    unit: str
    higher: bool = True
    target: float | None = None
    limit: float | None = None


Runner = Callable[[str, Settings], Awaitable[dict[str, float]]]
#: a runner that also gets the server's process id (to read the tree's memory itself)
PidRunner = Callable[[str, Settings, int], Awaitable[dict[str, float]]]


@dataclass
class Step:
    measures: list[Measure]
    run: Runner | PidRunner
    with_pid: bool = False


@dataclass
class Pair:
    app: str
    needs: str | None  # the binding kind whose plug-in edgelet needs for this app
    steps: list[Step] = field(default_factory=list)
    peer: str = "miniflare"
    #: environment for edgelet's server (e.g. a shorter Durable Object idle timeout)
    env: dict[str, str] = field(default_factory=dict)


# -- steps ------------------------------------------------------------------------------------------

def http_load(path: str, prefix: str, with_latency: bool = False, prime: str | None = None) -> Runner:
    """wrk on ``path`` (a warm-up run, then the measured one). ``prime``: a path with ``{i}``
    requested for i in 0..999 first, so every object exists before the clock starts."""
    async def run(url: str, s: Settings) -> dict[str, float]:
        if prime:
            c = Client(url)
            try:
                await bounded([lambda i=i: c.get(prime.format(i=i)) for i in range(1000)], 16)
            finally:
                await c.close()
        await asyncio.to_thread(wrk, url + path, seconds=s.warmup_seconds)
        got = await asyncio.to_thread(wrk, url + path, seconds=s.wrk_seconds)
        out = {f"{prefix}.rps": got["rps"]}
        if with_latency:
            out[f"{prefix}.p50"] = got["p50_ms"]
            out[f"{prefix}.p99"] = got["p99_ms"]
        return out
    return run


async def queue_send_to_ack(url: str, s: Settings) -> dict[str, float]:
    """Send ``queue_messages`` in batches of 100 (8 in flight) and wait until all are acked;
    ``queue_repeats`` times on the same server (one run is under a second), median.
    Through :class:`RawClient` (httpx's CPU per request made the client the bottleneck), and
    polled every 2 ms (a run of edgelet's is ~100 ms: a 10 ms poll was up to 10 % of it)."""
    c = RawClient(url)
    try:
        async def count() -> int:
            return int(await c.get("/count"))

        await c.get("/send?n=100&base=0", idempotent=False)  # warm-up: the consumer path exists and works
        await wait_until(lambda: _ge(count, 100), timeout=s.timeout, interval=0.01,
                         what=lambda: "the warm-up batch of 100 messages was not acknowledged")
        rates = []
        for _ in range(s.queue_repeats):
            base = await count()
            n = s.queue_messages
            t0 = time.perf_counter()
            await bounded([lambda i=i: c.get(f"/send?n=100&base={i * 100}", idempotent=False)
                           for i in range(n // 100)], 8)
            last: list[int] = [0]

            async def done() -> bool:
                last[0] = await count() - base
                return last[0] >= n

            t1 = await wait_until(done, timeout=s.timeout, interval=0.002,
                                  what=lambda: f"only {last[0]} of {n} messages acknowledged")
            rates.append(n / (t1 - t0))
        return {"queue.msgs": statistics.median(rates)}
    finally:
        await c.close()


async def _ge(fn: Callable[[], Awaitable[int]], n: int) -> bool:
    return await fn() >= n


#: createBatch requests in flight. One: with four, Miniflare (4.20260426) drops a connection
#: without answering after ~16 s in most full-mode rounds (seen, not explained).
CREATE_IN_FLIGHT = 1


async def workflows_to_completion(url: str, s: Settings) -> dict[str, float]:
    """Create ``wf_instances`` instances of ``wf_steps`` steps (createBatch of 100, one
    request at a time) and wait until every one is complete; steps per second over the
    whole run, from the first create to the last completion."""
    c = Client(url)
    try:
        prefix = "b" + uuid.uuid4().hex[:8]
        n, steps = s.wf_instances, s.wf_steps
        t0 = time.perf_counter()
        await bounded([lambda i=i: c.get(f"/batch?prefix={prefix}&start={i}&n={min(100, n - i)}&steps={steps}",
                                         idempotent=False) for i in range(0, n, 100)], CREATE_IN_FLIGHT)
        done_upto = [0]

        async def all_done() -> bool:
            done_upto[0] = int(await c.get(f"/scan?prefix={prefix}&n={n}&from={done_upto[0]}"))
            return done_upto[0] >= n

        t1 = await wait_until(all_done, timeout=s.timeout, interval=0.02,
                              what=lambda: f"instance {prefix}-{done_upto[0]} (of {n}) had not completed")
        return {"wf.steps": n * steps / (t1 - t0)}
    finally:
        await c.close()


async def workflow_e2e(url: str, s: Settings) -> dict[str, float]:
    """One 10-step instance at a time, created and polled (every 1 ms) inside the Worker:
    the median time of the request that creates it and returns when it is complete.

    Through :class:`RawClient` on both sides: httpx's ~1.4 ms of CPU per request sat inside
    every timed request (a third of edgelet's figure), and the row is about the platform."""
    c = RawClient(url, connections=1)
    try:
        await c.get("/e2e?steps=10", idempotent=False)  # warm-up
        times = []
        for _ in range(s.e2e_runs):
            t0 = time.perf_counter()
            await c.get("/e2e?steps=10", idempotent=False)
            times.append((time.perf_counter() - t0) * 1000)
        return {"wf.e2e": statistics.median(times)}
    finally:
        await c.close()


async def first_request(url: str, s: Settings) -> dict[str, float]:
    """The first request to a server that has just said it is ready (ms): what a developer
    waits for after starting it (a framework app may import lazily)."""
    c = Client(url, connections=1)
    try:
        t0 = time.perf_counter()
        await c.get("/items/1")
        return {"fastapi.first": (time.perf_counter() - t0) * 1000}
    finally:
        await c.close()


async def ws_echo(url: str, s: Settings) -> dict[str, float]:
    return {"ws.echo.rps": await ws.echo_rate(url, sockets=32, seconds=s.ws_seconds)}


async def ws_fanout(url: str, s: Settings) -> dict[str, float]:
    p50, p99 = await ws.fanout(url, sockets=100, rounds=s.ws_fanout_rounds)
    return {"ws.fan.p50": p50, "ws.fan.p99": p99}


async def ws_idle(url: str, s: Settings, pid: int) -> dict[str, float]:
    return {"ws.idle.mb": await ws.idle_memory(url, pid, sockets=s.ws_idle, settle=WS_SETTLE_S)}


#: edgelet evicts an idle Durable Object after EDGELET_DO_IDLE_TIMEOUT s (10 by default, 1 in
#: the ws pair); workerd hibernates one ~10 s after its last event. The idle step waits this long.
WS_SETTLE_S = 12.0


PAIRS: list[Pair] = [
    Pair("hello", None, [Step([
        Measure("hello.rps", "hello-world HTTP, 32 connections", "req/s", target=5.0),
        Measure("hello.p50", "hello-world HTTP, p50 latency", "ms", higher=False),
        Measure("hello.p99", "hello-world HTTP, p99 latency", "ms", higher=False, limit=10.0),
    ], http_load("/", "hello", with_latency=True))]),
    # the floor: the same answer from a raw ASGI app on bare uvicorn (bench/apps/hello/app.py),
    # alternating with edgelet rounds of its own so the ratio compares neighbouring runs
    Pair("hello", None, [Step([
        Measure("hello.bare.rps", "hello-world HTTP, 32 connections, vs a raw ASGI app", "req/s",
                target=0.75),
    ], http_load("/", "hello.bare"))], peer="uvicorn"),
    Pair("kv", "kv", [Step([
        Measure("kv.rps", "KV put+get through a Worker (1 put + 1 get per request)", "req/s", target=1.0),
    ], http_load("/", "kv"))]),
    Pair("d1", "d1", [Step([
        Measure("d1.rps", "D1 through a Worker (1 indexed SELECT + 1 INSERT per request, on disk)", "req/s",
                target=3.0),
    ], http_load("/", "d1", prime="/setup?i={i}"))]),
    Pair("r2", "r2", [
        Step([Measure("r2.small.rps", "R2 put+get of a 1 KiB object through a Worker", "req/s", target=2.0)],
             http_load("/small", "r2.small")),
        Step([Measure("r2.large.rps", "R2 put+get of a 1 MiB object through a Worker", "req/s", target=2.0)],
             http_load("/large", "r2.large")),
    ]),
    Pair("do", "durable_objects", [
        Step([Measure("do.one.rps", "Durable Object RPC, one object", "calls/s", target=1.0)],
             http_load("/one", "do.one")),
        Step([Measure("do.many.rps", "Durable Object RPC, 1,000 objects", "calls/s", target=1.0)],
             http_load("/many", "do.many", prime="/obj/{i}")),
    ]),
    # the class in another Worker (script_name): calls cross from the caller's isolate to the
    # objects Worker's; the rows above call a Worker's own class
    Pair("do_cross", "durable_objects", [
        Step([Measure("do.cross.one.rps", "Durable Object RPC to another Worker's class, one object", "calls/s",
                      target=1.0)], http_load("/one", "do.cross.one")),
        Step([Measure("do.cross.many.rps", "Durable Object RPC to another Worker's class, 1,000 objects",
                      "calls/s", target=1.0)], http_load("/many", "do.cross.many", prime="/obj/{i}")),
    ]),
    Pair("queue", "queues", [Step([
        Measure("queue.msgs", "queue send-to-ack, {queue_messages:,} messages", "msg/s", target=2.0),
    ], queue_send_to_ack)]),
    Pair("fastapi", None, [
        Step([Measure("fastapi.first", "FastAPI app: first request after start", "ms", higher=False)],
             first_request),
        Step([Measure("fastapi.rps", "FastAPI app (3 routes), GET /items/42?q=x, 32 connections", "req/s",
                      target=0.6)], http_load("/items/42?q=x", "fastapi")),
    ], peer="uvicorn"),
    Pair("workflow", "workflows", [
        Step([Measure("wf.steps", "workflows: {wf_instances:,} instances × {wf_steps} steps to completion",
                      "steps/s", target=3.0)], workflows_to_completion),
        Step([Measure("wf.e2e", "workflows: one 10-step instance end to end", "ms", higher=False,
                      limit=3.0)],
             workflow_e2e),
        Step([Measure("wf.create.rps", "workflows: instance creation, 32 connections", "inst/s", target=3.0)],
             http_load("/create?steps=1", "wf.create")),
    ]),
    Pair("ws", "durable_objects", [
        Step([Measure("ws.echo.rps", "WebSocket echo to a Durable Object, 32 sockets", "msg/s", target=2.0)],
             ws_echo),
        Step([Measure("ws.fan.p50", "WebSocket broadcast to 100 sockets, p50 until the last has it", "ms",
                      higher=False, target=2.0),
              Measure("ws.fan.p99", "WebSocket broadcast to 100 sockets, p99", "ms", higher=False, target=2.0)],
             ws_fanout),
        Step([Measure("ws.idle.mb", "{ws_idle:,} idle hibernated WebSockets, RSS of the process tree", "MB",
                      higher=False, limit=300.0)], ws_idle, with_pid=True),
    ], env={"EDGELET_DO_IDLE_TIMEOUT": "1"}),
]


def describe(label: str, s: Settings) -> str:
    return label.format(**s.__dict__)


__all__ = ["PAIRS", "Pair", "Step", "Measure", "Settings", "LoadError", "describe"]
