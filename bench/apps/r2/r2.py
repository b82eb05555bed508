"""R2 put+get per request: /small a 1 KiB object, /large a 1 MiB one, on a key drawn from 1,000.

Mirrored by bench/peers/miniflare/workers/r2.mjs for the side-by-side run."""

import random

from workers import Response, WorkerEntrypoint

SMALL = b"s" * 1024
LARGE = b"L" * (1024 * 1024)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        large = request.url.endswith("/large")
        key = f"{'l' if large else 's'}{random.randrange(1000)}"
        await self.env.B.put(key, LARGE if large else SMALL)
        obj = await self.env.B.get(key)
        data = await obj.bytes()
        return Response(str(len(data)))
