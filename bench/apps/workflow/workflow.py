"""Workflows; mirrors bench/peers/miniflare/workers/workflow.mjs.

A workflow of ``steps`` trivial steps, and routes to create instances one at a time
(/create), 100 at a time (/batch), scan for completion (/scan) and run one instance end to
end inside the Worker (/e2e).
"""

import asyncio
from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


class Steps(WorkflowEntrypoint):
    async def run(self, event, step):
        n = (event["payload"] or {}).get("steps", 10)
        acc = 0
        for i in range(n):
            @step.do(f"step-{i}")
            async def one():
                return i  # noqa: B023 - awaited at once, in this iteration

            acc += await one()
        return acc


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        wf = self.env.STEPS
        if url.path == "/create":
            instance = await wf.create(params={"steps": int(q.get("steps", "1"))})
            return Response(instance.id)
        if url.path == "/batch":
            prefix, start = q["prefix"], int(q.get("start", "0"))
            n, steps = int(q.get("n", "100")), int(q.get("steps", "10"))
            await wf.createBatch([{"id": f"{prefix}-{i}", "params": {"steps": steps}}
                                  for i in range(start, start + n)])
            return Response("ok")
        if url.path == "/scan":
            # index of the first instance, from `from`, that has not completed (or `n` if all have)
            prefix, n, i = q["prefix"], int(q["n"]), int(q.get("from", "0"))
            while i < n:
                st = await (await wf.get(f"{prefix}-{i}")).status()
                if st["status"] in ("errored", "terminated"):
                    return Response(f"instance {prefix}-{i} {st['status']}: {st['error']}", status=500)
                if st["status"] != "complete":
                    break
                i += 1
            return Response(str(i))
        if url.path == "/e2e":
            instance = await wf.create(params={"steps": int(q.get("steps", "10"))})
            while True:
                st = await instance.status()
                if st["status"] == "complete":
                    return Response("ok")
                if st["status"] in ("errored", "terminated"):
                    return Response(f"{st['status']}: {st['error']}", status=500)
                await asyncio.sleep(0.001)
        return Response("not found", status=404)
