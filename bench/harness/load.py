"""Load generators: wrk for steady HTTP load, and one small asyncio client for workloads
that wrk cannot drive (send N then wait for the consumer, poll for completion).

Both sides of a pair get exactly the same generator with the same settings, on loopback,
bounded in request count and in time.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import time
from typing import Any, Awaitable, Callable

import httpx

from common import _ms


class LoadError(RuntimeError):
    """A workload did not run correctly (errors from the Worker, a timeout)."""


def wrk(url: str, *, seconds: float, connections: int = 32, threads: int = 2) -> dict[str, Any]:
    """rps, p50/p99 (ms) from ``wrk --latency``; LoadError if any request failed."""
    if shutil.which("wrk") is None:
        raise LoadError("wrk is not installed (apt-get install wrk)")
    duration = max(1, round(seconds))
    proc = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--timeout", "5s",
                           "--latency", url], capture_output=True, text=True, timeout=duration + 60)
    out = proc.stdout
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if proc.returncode != 0 or found is None:
        raise LoadError(f"wrk failed on {url}: {(proc.stderr or out).strip()[-200:]}")
    lat = {m.group(1): _ms(m.group(2), m.group(3))
           for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = int(bad.group(1)) if bad else 0
    sock_errors = sum(int(g) for g in sock.groups()) if sock else 0
    # A few socket timeouts under 32 connections are a platform's tail, not a broken run
    # (Miniflare's KV shows some); rps counts only completed requests either way.
    if total == 0 or non2xx > 0 or sock_errors > total * 0.01:
        detail = ""
        if non2xx:
            detail = f"; first answer: {probe(url)}"
        raise LoadError(f"{non2xx} non-2xx answers and {sock_errors} socket errors in {total} requests "
                        f"to {url}{detail}")
    return {"rps": float(found.group(1)), "p50_ms": lat.get("50"), "p99_ms": lat.get("99"), "requests": total,
            "socket_errors": sock_errors}


def probe(url: str) -> str:
    """One request's status and start of body, to say why a workload failed."""
    try:
        resp = httpx.get(url, timeout=10)
        return f"{resp.status_code} {resp.text.strip()[:160]!r}"
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"


class Client:
    """An async HTTP/1.1 client with keep-alive (httpx), failing loudly on non-2xx."""

    def __init__(self, base: str, connections: int = 16) -> None:
        self.base = base
        self.http = httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(60.0),
                                      limits=httpx.Limits(max_connections=connections,
                                                          max_keepalive_connections=connections))

    async def get(self, path: str, *, idempotent: bool = True) -> str:
        """The body of a 2xx answer. A read-only request whose kept-alive connection the
        server had closed (workerd does so after some requests) is sent again, once."""
        try:
            resp = await self.http.get(path)
        except httpx.RemoteProtocolError as exc:
            if not idempotent:
                raise LoadError(f"GET {path}: {type(exc).__name__}: {exc}") from None
            try:
                resp = await self.http.get(path)
            except httpx.HTTPError as exc2:
                raise LoadError(f"GET {path}: {type(exc2).__name__}: {exc2}") from None
        except httpx.HTTPError as exc:
            raise LoadError(f"GET {path}: {type(exc).__name__}: {exc}") from None
        if resp.status_code >= 300:
            raise LoadError(f"GET {path} answered {resp.status_code}: {resp.text.strip()[:200]}")
        return resp.text

    async def close(self) -> None:
        await self.http.aclose()


async def bounded(tasks: list[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    """Run the thunks with at most ``concurrency`` in flight; the first error wins."""
    queue = list(reversed(tasks))

    async def worker() -> None:
        while queue:
            await queue.pop()()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def wait_until(check: Callable[[], Awaitable[bool]], *, timeout: float, interval: float,
                     what: Callable[[], str]) -> float:
    """Poll ``check`` until true; the monotonic time it became true. LoadError on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if await check():
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise LoadError(f"{what()} after {timeout:g} s")
        await asyncio.sleep(interval)
