"""KV put+get through a Worker; mirrors bench/peers/miniflare/workers/kv.mjs.

One put and one get of a 100-byte value per request, on a key drawn from 10,000.
"""

import random

from workers import Response, WorkerEntrypoint

VALUE = "v" * 100


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        key = f"k{random.randrange(10000)}"
        await self.env.KV.put(key, VALUE)
        got = await self.env.KV.get(key)
        return Response(got)
