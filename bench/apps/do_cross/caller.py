"""Durable Object RPC to another Worker's class; mirrors bench/peers/miniflare/workers/do_cross_caller.mjs.

The same calls as bench/apps/do (/one, /many, /obj/K), but the class lives in Worker
"objects" (objects.py), so every call goes from this Worker's isolate to that one's.
"""

import random
from urllib.parse import urlparse

from workers import Response, WorkerEntrypoint


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
