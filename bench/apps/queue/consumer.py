"""Queue send-to-ack; mirrors bench/peers/miniflare/workers/queue.mjs.

(Not named queue.py: a script beside the config is importable by its name, and a module
named like the standard library's ``queue`` would shadow it inside the isolate.)

/send?n=N sends N messages in one sendBatch; the consumer counts what it acknowledged;
/count reports the count. The count lives in the isolate, which runs both handlers.
"""

from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint

acked = 0


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlparse(request.url)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        if url.path == "/send":
            n, base = int(q.get("n", "100")), int(q.get("base", "0"))
            await self.env.Q.sendBatch([{"body": {"i": base + i}} for i in range(n)])
            return Response("ok")
        if url.path == "/count":
            return Response(str(acked))
        return Response("not found", status=404)

    async def queue(self, batch):
        global acked
        acked += len(batch.messages)  # returning normally acknowledges every message
