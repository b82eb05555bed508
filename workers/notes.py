"""Notes kept in Workers KV: `PUT /notes/NAME` stores the body, `GET /notes/NAME` reads it.

    curl -X PUT --data 'buy milk' http://notes.localhost:8787/notes/todo
    curl http://notes.localhost:8787/notes/todo
    curl http://notes.localhost:8787/notes            # every note, with its size
    curl -X DELETE http://notes.localhost:8787/notes/todo
"""

from urllib.parse import unquote, urlsplit

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = urlsplit(request.url).path.rstrip("/")
        if path == "/notes":
            return await self.index()
        if not path.startswith("/notes/"):
            return Response("Try PUT or GET /notes/NAME, or GET /notes", status=404)
        name = unquote(path[len("/notes/"):])
        try:
            if request.method == "PUT":
                text = await request.text()
                # metadata travels with the key, so the index needs no extra reads
                await self.env.NOTES.put(name, text, metadata={"size": len(text)})
                return Response(f"saved {name}", status=201)
            if request.method == "DELETE":
                await self.env.NOTES.delete(name)
                return Response(f"deleted {name}")
            note = await self.env.NOTES.get(name)
        except ValueError as exc:  # an unusable name or a note over the KV limits
            return Response(str(exc), status=400)
        if note is None:
            return Response(f"no note named {name}", status=404)
        return Response(note)

    async def index(self):
        notes, cursor = [], None
        while True:
            page = await self.env.NOTES.list(cursor=cursor)
            notes += [{"name": k.name, "size": k.get("metadata", {}).get("size")}
                      for k in page.keys]
            if page.list_complete:
                return Response.json(notes)
            cursor = page.cursor
