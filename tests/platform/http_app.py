"""A small app with one binding of each kind that has control-API routes, shared by the
HTTP-hardening, control-API and OpenAPI tests."""

from __future__ import annotations

CONFIG = """
    [[workers]]
    name = "web"
    main = "web.py"
    kv_namespaces = [{ binding = "KV", id = "kv" }]
    queues.producers = [{ binding = "Q", queue = "q" }]
    queues.consumers = [{ queue = "q", max_batch_timeout = 1 }]
    workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
    durable_objects.bindings = [{ name = "COUNTER", class_name = "Counter" }]
    triggers = { crons = ["0 0 1 1 *"] }

    [[workers]]
    name = "other"
    main = "other.py"
"""

WEB = """
    from workers import DurableObject, Response, WorkerEntrypoint, WorkflowEntrypoint

    class Flow(WorkflowEntrypoint):
        async def run(self, event, step):
            @step.do("first")
            async def first():
                return event.payload
            await first()
            await step.wait_for_event("go", "go", timeout="1 hour")
            return "done"

    class Counter(DurableObject):
        async def hit(self):
            n = (await self.ctx.storage.get("n") or 0) + 1
            await self.ctx.storage.put("n", n)
            return n

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/nan"):  # a Worker may store what JSON cannot carry
                await self.env.FLOW.create(id="nan", params={"x": float("nan"), "y": float("inf")})
                return Response("created")
            body = await request.clone().text()        # a clone: /json reads the body again
            await self.env.KV.put("last-body", body)   # proof that the Worker ran
            if request.url.endswith("/json"):
                try:
                    return Response.json({"json": await request.json()})
                except ValueError as exc:
                    return Response(f"{type(exc).__name__}: {exc}", status=400)
            return Response(request.url)

        async def scheduled(self, controller):
            await self.env.KV.put("cron-ran", "yes")

        async def queue(self, batch):
            for message in batch.messages:
                message.ack()
"""

OTHER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("other " + request.url)
"""

FILES = {"wrangler_like.toml": CONFIG, "web.py": WEB, "other.py": OTHER}
ARGS = ("--persist-to", "state", "--no-reload")
