"""A queue with a producer and no consumer, filled for the 1,000,000-pending-messages scale
run (bench/harness/scale.py): /fill?n=N sends N small messages, sendBatch of 100 at a time."""

from urllib.parse import parse_qs, urlparse

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        q = {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}
        start, n = int(q.get("start", "0")), int(q.get("n", "100"))
        for first in range(start, start + n, 100):
            await self.env.BACKLOG.sendBatch([{"body": {"i": i}} for i in range(first, min(first + 100, start + n))])
        return Response("ok")
