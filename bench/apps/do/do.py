"""Durable Object RPC; mirrors bench/peers/miniflare/workers/do.mjs.

An RPC call to an object that counts in memory: /one calls the object "one", /many one of
1,000 objects at random, /obj/K object K (the harness touches all 1,000 once before
measuring /many).
"""

import random
from urllib.parse import urlparse

from workers import DurableObject, Response, WorkerEntrypoint


class Counter(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.n = 0

    async def hit(self):
        self.n += 1
        return self.n


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlparse(request.url).path
        name = "one"
        if path == "/many":
            name = f"o{random.randrange(1000)}"
        elif path.startswith("/obj/"):
            name = f"o{path[5:]}"
        stub = self.env.COUNTER.get(self.env.COUNTER.idFromName(name))
        n = await stub.hit()
        return Response(str(n))
