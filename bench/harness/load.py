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


class RawClient:
    """:class:`Client`'s interface over plain keep-alive HTTP/1.1 connections (asyncio
    streams, GET only, Content-Length or chunked bodies).

    Why: httpx costs ~1.4 ms of CPU per request on this machine, so a workload of short
    requests measured the client: sending the queue workload's 100 requests took 130-150 ms
    of the client's CPU in a 140-160 ms send phase, on one of the two cores the servers
    share. This client costs a few tens of µs per request, so the figure is the server's.
    Both sides of a pair use it alike."""

    def __init__(self, base: str, connections: int = 16) -> None:
        url = httpx.URL(base)
        self.host, self.port = url.host, url.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.free: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.gate = asyncio.Semaphore(connections)

    async def get(self, path: str, *, idempotent: bool = True) -> str:
        """The body of a 2xx answer; a request on a kept-alive connection the server had
        closed is sent again once on a new one if it is read-only (as :class:`Client`)."""
        async with self.gate:
            conn = None
            while self.free and conn is None:
                reader, writer = self.free.pop()
                if reader.at_eof() or writer.is_closing():
                    writer.close()
                else:
                    conn = (reader, writer)
            reused = conn is not None
            try:
                if conn is None:
                    conn = await asyncio.open_connection(self.host, self.port)
                status, body, keep = await asyncio.wait_for(self._exchange(conn, path), 60)
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
                if conn is not None:
                    conn[1].close()
                if not (reused and idempotent):
                    raise LoadError(f"GET {path}: {type(exc).__name__}: {exc}") from None
                return await self.get(path, idempotent=False)
            except TimeoutError:
                conn[1].close()
                raise LoadError(f"GET {path}: no answer within 60 s") from None
            if keep:
                self.free.append(conn)
            else:
                conn[1].close()
        text = body.decode("utf-8", "replace")
        if status >= 300:
            raise LoadError(f"GET {path} answered {status}: {text.strip()[:200]}")
        return text

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter],
                        path: str) -> tuple[int, bytes, bool]:
        reader, writer = conn
        writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + self.host_header + b"\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                chunk = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(chunk[:-2])
            body = b"".join(parts)
        else:
            body = await reader.read()  # delimited by the close
            return status, body, False
        return status, body, headers.get("connection", "").lower() != "close"

    async def close(self) -> None:
        for _, writer in self.free:
            writer.close()
        self.free.clear()


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
