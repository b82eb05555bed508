"""Named counters in Durable Objects: `GET /count/NAME` adds one to NAME and returns it.

    curl http://counter.localhost:8787/count/visits       # {"name": "visits", "count": 1}
    curl http://counter.localhost:8787/count/visits       # {"name": "visits", "count": 2}
    curl 'http://counter.localhost:8787/count/visits?peek' # reads without counting
    edgelet durable-objects show COUNTER visits           # the object's stored keys

One object per name, one instance of it on the platform, one event at a time: concurrent
requests never lose an increment, and the count survives restarts.
"""

from urllib.parse import unquote, urlsplit

from workers import DurableObject, Response, WorkerEntrypoint


class Counter(DurableObject):
    async def increment(self, by=1):
        count = (await self.ctx.storage.get("count") or 0) + by
        await self.ctx.storage.put("count", count)
        return count

    async def value(self):
        return await self.ctx.storage.get("count") or 0


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        url = urlsplit(request.url)
        if not url.path.startswith("/count/") or len(url.path) <= len("/count/"):
            return Response("Try GET /count/NAME (add ?peek to read without counting)", status=404)
        name = unquote(url.path[len("/count/"):])
        counter = self.env.COUNTER.getByName(name)
        count = await (counter.value() if "peek" in url.query else counter.increment())
        return Response.json({"name": name, "count": count})
