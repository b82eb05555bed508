"""Scale runs that no peer can do locally, edgelet alone (full mode only).

- 50,000 waiting workflow instances (each asleep for an hour);
- 2,000,000 queued workflow instances (behind one that holds the only running slot);
- 1,000,000 pending queue messages (a producer with no consumer, bench/apps/queue_backlog).

Each is bounded in time; one that hits its bound reports how far it got. Reported: the rate,
the peak RSS of the platform's process tree, and the state folder's size on disk.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Callable

from .load import Client, LoadError, bounded
from .pairs import Settings
from .procs import ROOT, EdgeletServer, PeakRSS, StartError, state_folder
from .results import Results

APP = "workflow_scale"


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


async def _fill(url: str, wf: str, n: int, per_request: int, deadline: float, block: bool) -> dict[str, float]:
    c = Client(url, connections=4)
    try:
        if block:
            await c.get(f"/block?wf={wf}", idempotent=False)
        prefix = "s" + uuid.uuid4().hex[:6]
        created = [0]
        t0 = time.perf_counter()

        async def one(start: int) -> None:
            if time.monotonic() > deadline:
                return
            await c.get(f"/fill?wf={wf}&prefix={prefix}&start={start}&n={min(per_request, n - start)}",
                        idempotent=False)
            created[0] += min(per_request, n - start)

        await bounded([lambda s=s: one(s) for s in range(0, n, per_request)], 4)
        elapsed = time.perf_counter() - t0
        total = created[0]
        want = "queued" if block else "waiting"
        counts: dict[str, int] = {}
        settled = None
        while time.monotonic() < deadline + 60 and total:
            # instances with ids prefix-0 .. prefix-(total-1) exist only if filled in order
            counts = json.loads(await c.get(f"/sample?wf={wf}&prefix={prefix}&n={total}&k=100"))
            if counts.get(want, 0) == sum(counts.values()):
                settled = time.perf_counter() - t0
                break
            await asyncio.sleep(1)
        return {"created": total, "create_s": elapsed, "settled_s": settled or -1, "counts": counts}  # type: ignore[dict-item]
    finally:
        await c.close()


def _workflow_scale(name: str, wf: str, n: int, per_request: int, bound: float, block: bool,
                    results: Results, log: Callable[[str], None]) -> None:
    if not (ROOT / "bindings" / "workflows" / "plugin.py").exists():
        results.scale.append({"workload": name, "result": "skipped: edgelet has no workflows binding yet"})
        return
    with state_folder("scale") as state:
        try:
            server = EdgeletServer(APP, state)
        except StartError as exc:
            results.scale.append({"workload": name, "result": f"skipped: {exc}"})
            return
        try:
            with PeakRSS(server.pid, interval=0.5) as mem:
                try:
                    got = asyncio.run(_fill(server.url, wf, n, per_request, time.monotonic() + bound, block))
                except (LoadError, ValueError) as exc:
                    results.scale.append({"workload": name, "result": f"failed: {exc}"})
                    return
            want = "queued" if block else "waiting"
            created, create_s = int(got["created"]), got["create_s"]
            text = (f"{created:,} created in {create_s:.1f} s ({created / create_s:,.0f}/s); "
                    if created else "none created; ")
            if created < n:
                text += f"stopped at the {bound:.0f} s bound; "
            counts = got["counts"]
            text += (f"all {want} {got['settled_s']:.1f} s after the first create" if got["settled_s"] >= 0
                     else f"a sample of 100 showed {counts}")
            text += (f"; peak RSS {mem.peak_mb:,.0f} MB, state on disk {folder_mb(state):,.0f} MB "
                     f"(`python -m bench --only scale`)")
            results.scale.append({"workload": name, "result": text})
            log(f"scale {name}: {text}")
        finally:
            server.stop()


async def _send(url: str, n: int, per_request: int, deadline: float) -> tuple[int, float, int | None]:
    c = Client(url, connections=4)
    try:
        sent = [0]
        t0 = time.perf_counter()

        async def one(start: int) -> None:
            if time.monotonic() > deadline:
                return
            await c.get(f"/fill?start={start}&n={min(per_request, n - start)}", idempotent=False)
            sent[0] += min(per_request, n - start)

        await bounded([lambda s=s: one(s) for s in range(0, n, per_request)], 4)
        elapsed = time.perf_counter() - t0
        backlog = None
        try:
            listed = json.loads(await c.get("/cdn-cgi/edgelet/api/queues"))["result"]
            backlog = next((q.get("backlog") for q in listed if q.get("name") == "backlog"), None)
        except (LoadError, ValueError, KeyError, TypeError, AttributeError):
            pass
        return sent[0], elapsed, backlog
    finally:
        await c.close()


def _queue_pending(n: int, bound: float, results: Results, log: Callable[[str], None]) -> None:
    name = f"{n:,} pending queue messages"
    if not (ROOT / "bindings" / "queues" / "plugin.py").exists():
        results.scale.append({"workload": name, "result": "skipped: edgelet has no queues binding yet"})
        return
    with state_folder("scale") as state:
        try:
            server = EdgeletServer("queue_backlog", state)
        except StartError as exc:
            results.scale.append({"workload": name, "result": f"skipped: {exc}"})
            return
        try:
            with PeakRSS(server.pid, interval=0.5) as mem:
                try:
                    sent, elapsed, backlog = asyncio.run(_send(server.url, n, 10_000, time.monotonic() + bound))
                except LoadError as exc:
                    results.scale.append({"workload": name, "result": f"failed: {exc}"})
                    return
            text = f"{sent:,} sent in {elapsed:.1f} s ({sent / elapsed:,.0f} msg/s)"
            if sent < n:
                text += f"; stopped at the {bound:.0f} s bound"
            if backlog is not None:
                text += f"; backlog reported by the control API: {backlog:,}"
            text += (f"; peak RSS {mem.peak_mb:,.0f} MB, state on disk {folder_mb(state):,.0f} MB "
                     f"(`python -m bench --only scale`)")
            results.scale.append({"workload": name, "result": text})
            log(f"scale {name}: {text}")
        finally:
            server.stop()


def run(s: Settings, results: Results, log: Callable[[str], None], fraction: float = 1.0) -> None:
    waiting, queued, pending = (max(100, int(x * fraction)) for x in (50_000, 2_000_000, 1_000_000))
    _workflow_scale(f"{waiting:,} waiting workflow instances", "sleeper", waiting, 1000, 900, False, results, log)
    _workflow_scale(f"{queued:,} queued workflow instances", "hold", queued, 10_000, 1800, True, results, log)
    _queue_pending(pending, 1800, results, log)
