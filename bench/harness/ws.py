"""WebSocket workloads, the same on both sides (bench/apps/ws/ws.py and
bench/peers/miniflare/workers/ws.mjs: one chat-room Durable Object with the hibernation API).

The echo and broadcast loads come from ``ws_client.mjs`` beside this file: a Node.js client on
the ``ws`` package (Miniflare's own dependency, installed with it by bench/setup_peers.sh),
which costs a few microseconds per message. The Python ``websockets`` client used before cost
~30 µs per round trip and filled one of the machine's two cores at ~33k msg/s, so the ratio
measured client plus server; the Python client stays as the fallback when Node.js or the
package is missing (``client="python"``). No per-message deflate on either, so both platforms
carry plain frames. The figures:

- echo round trips per second over 32 sockets, one room each, each socket sending its next
  message once the last one came back;
- broadcast fan-out: one message to a room of 100 sockets, the time until the last socket
  has it (p50/p99 over rounds);
- the resident memory of the platform's whole process tree holding N idle sockets whose
  objects have had time to hibernate (one message afterwards checks they still work).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from .load import LoadError
from .procs import tree_rss

#: the Node.js load generator (see the module's docstring)
NODE_CLIENT = Path(__file__).resolve().parent / "ws_client.mjs"
PEERS = Path(__file__).resolve().parent.parent / ".peers"
#: untimed broadcast rounds before the timed ones (ws_client.mjs has the same, and says why:
#: the client's own first rounds cost it about twice the CPU of the later ones)
FANOUT_WARMUP_ROUNDS = 100


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1)


def node_client() -> str | None:
    """The ``node`` executable when the Node.js client can run (Node.js and the ``ws``
    package of the Miniflare peer are installed), else None (the Python client runs)."""
    if os.environ.get("EDGELET_BENCH_WS_CLIENT", "") == "python":
        return None
    node = shutil.which("node")
    if node is None or not (PEERS / "miniflare" / "node_modules" / "ws" / "package.json").exists():
        return None
    return node


def client_name() -> str:
    """Which client the echo and broadcast loads use, for the report."""
    return "node ws" if node_client() else "python websockets"


async def _run_node(node: str, args: list[str], on_start: Callable[[], None] | None,
                    timeout: float) -> dict[str, Any]:
    """Run ``ws_client.mjs`` with ``args``: wait for its ``ready``, call ``on_start``, let it
    go, and return its JSON result (LoadError with its words if it fails)."""
    proc = await asyncio.create_subprocess_exec(
        node, str(NODE_CLIENT), *args, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        if line.strip() != b"ready":
            rest = await proc.stdout.read()
            raise LoadError(f"the Node.js WebSocket client ({' '.join(args[:1])}) failed: "
                            f"{(line + rest).decode(errors='replace').strip()[-400:] or 'no output'}")
        if on_start is not None:
            on_start()
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        try:
            return dict(json.loads(line))
        except ValueError:
            rest = await proc.stdout.read()
            raise LoadError(f"the Node.js WebSocket client ({args[0]}) failed: "
                            f"{(line + rest).decode(errors='replace').strip()[-400:] or 'no output'}") from None
    finally:
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _connect(url: str, **options: Any) -> Any:
    try:
        return await connect(url, compression=None, open_timeout=30, **options)
    except Exception as exc:
        raise LoadError(f"could not open a WebSocket to {url}: {type(exc).__name__}: {exc}") from None


async def echo_rate(url: str, *, sockets: int = 32, seconds: float = 5.0,
                    on_start: Callable[[], None] | None = None) -> float:
    """Round trips per second over ``sockets`` sockets (one room each), after a warm-up
    message each; ``on_start`` is called as the clock starts (to read a CPU counter)."""
    base = ws_url(url)
    node = node_client()
    if node is not None:
        out = await _run_node(node, ["echo", base, str(sockets), str(seconds)], on_start, 60 + seconds)
        return float(out["round_trips"]) / float(out["seconds"])
    conns = [await _connect(f"{base}/room/echo{i}") for i in range(sockets)]
    try:
        for ws in conns:  # every object exists before the clock starts
            await ws.send("e:warm")
            if await ws.recv() != "e:warm":
                raise LoadError("the echo room answered something else than the message sent")
        count = 0
        if on_start is not None:
            on_start()
        deadline = time.perf_counter() + seconds

        async def loop(ws: Any) -> None:
            nonlocal count
            while time.perf_counter() < deadline:
                await ws.send("e:x")
                await ws.recv()
                count += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop(ws) for ws in conns))
        return count / (time.perf_counter() - started)
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def fanout(url: str, *, sockets: int = 100, rounds: int = 200,
                 on_start: Callable[[], None] | None = None) -> tuple[float, float]:
    """(p50, p99) ms from one ``b:`` message sent until all ``sockets`` sockets received it;
    ``on_start`` is called after the FANOUT_WARMUP_ROUNDS untimed rounds, as the timed ones
    begin."""
    base = ws_url(url)
    node = node_client()
    if node is not None:
        out = await _run_node(node, ["fanout", base, str(sockets), str(rounds)], on_start, 60 + rounds)
        times = sorted(float(t) for t in out["times_ms"])
        return statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)]
    conns = [await _connect(f"{base}/room/fan", max_queue=None) for _ in range(sockets)]
    try:
        times = []
        for i in range(rounds + FANOUT_WARMUP_ROUNDS):  # untimed first, as ws_client.mjs does
            if i == FANOUT_WARMUP_ROUNDS and on_start is not None:
                on_start()
            started = time.perf_counter()
            await conns[i % sockets].send(f"b:{i}")
            got = await asyncio.wait_for(asyncio.gather(*(ws.recv() for ws in conns)), 30)
            if any(g != f"b:{i}" for g in got):
                raise LoadError(f"fan-out round {i}: a socket received {next(g for g in got if g != f'b:{i}')!r}")
            if i >= FANOUT_WARMUP_ROUNDS:
                times.append((time.perf_counter() - started) * 1000)
        times.sort()
        return statistics.median(times), times[max(0, int(len(times) * 0.99) - 1)]
    finally:
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)


async def idle_memory(url: str, pid: int, *, sockets: int = 10_000, rooms: int = 100,
                      settle: float = 12.0) -> float:
    """MB resident in ``pid``'s process tree with ``sockets`` idle sockets over ``rooms``
    rooms, ``settle`` s after the last one opened (long enough for idle objects to go)."""
    base = ws_url(url)
    conns: list[Any] = []
    try:
        for start in range(0, sockets, 200):
            batch = await asyncio.gather(*(_connect(f"{base}/room/idle{i % rooms}", ping_interval=None)
                                           for i in range(start, min(start + 200, sockets))))
            conns.extend(batch)
        await asyncio.sleep(settle)
        rss = tree_rss(pid) / 1e6
        await conns[0].send("e:still there?")
        if await asyncio.wait_for(conns[0].recv(), 30) != "e:still there?":
            raise LoadError("an idle socket did not get its echo after the objects hibernated")
        return rss
    finally:
        for start in range(0, len(conns), 500):
            await asyncio.gather(*(ws.close() for ws in conns[start:start + 500]), return_exceptions=True)
