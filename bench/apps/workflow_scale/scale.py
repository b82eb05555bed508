"""Workflows at scale, edgelet alone (bench/harness/scale.py drives it).

``Sleeper`` sleeps an hour at once: its instances sit ``waiting`` (a row in the database,
no coroutine). ``Hold`` runs with ``concurrency = 1`` and its first instance keeps the one
running slot (a step that lasts an hour), so every later instance stays ``queued``.
/fill creates many instances in one request (createBatch of 100 at a time); /sample reads
the status of ``k`` instances spread evenly over the ids and counts them by status.
"""

import asyncio
import json
from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class Sleeper(WorkflowEntrypoint):
    async def run(self, event, step):
        await step.sleep("nap", "1 hour")


class Hold(WorkflowEntrypoint):
    async def run(self, event, step):
        @step.do("hold", config={"retries": {"limit": 0, "delay": 1000}, "timeout": "2 hours"})
        async def hold():
            if (event["payload"] or {}).get("block"):
                await asyncio.sleep(3600)
            return 1

        await hold()


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        wf = self.env.SLEEPER if q.get("wf", "sleeper") == "sleeper" else self.env.HOLD
        if url.path == "/block":
            await wf.create(id="blocker", params={"block": True})
            return Response("ok")
        if url.path == "/fill":
            prefix, start, n = q["prefix"], int(q["start"]), int(q["n"])
            for first in range(start, start + n, 100):
                await wf.createBatch([{"id": f"{prefix}-{i}"} for i in range(first, min(first + 100, start + n))])
            return Response("ok")
        if url.path == "/sample":
            prefix, n, k = q["prefix"], int(q["n"]), int(q.get("k", "100"))
            counts = {}
            for j in range(k):
                i = min(n - 1, j * n // k) if j < k - 1 else n - 1
                st = await (await wf.get(f"{prefix}-{i}")).status()
                counts[st["status"]] = counts.get(st["status"], 0) + 1
            return Response(json.dumps(counts))
        return Response("not found", status=404)
