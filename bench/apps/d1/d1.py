"""D1 through a Worker; mirrors bench/peers/miniflare/workers/d1.mjs.

``/setup?i=N`` creates the table and its index (once) and seeds key N; every other request
runs one indexed SELECT (a key drawn from 1,000) and one INSERT.
"""

import random

from workers import Response, WorkerEntrypoint

SCHEMA = ("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, k INTEGER NOT NULL, body TEXT NOT NULL);"
          "CREATE INDEX IF NOT EXISTS items_k ON items (k);")
BODY = "v" * 100


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        db = self.env.DB
        if "/setup" in request.url:
            i = int(request.url.rsplit("=", 1)[1])
            await db.exec(SCHEMA)
            await db.prepare("INSERT INTO items (k, body) VALUES (?, ?)").bind(i, BODY).run()
            return Response("ok")
        k = random.randrange(1000)
        row = await db.prepare("SELECT id, body FROM items WHERE k = ? LIMIT 1").bind(k).first()
        await db.prepare("INSERT INTO items (k, body) VALUES (?, ?)").bind(k, BODY).run()
        return Response(str(row["id"]) if row else "none")
