"""The same FastAPI app as a Python Worker, as Cloudflare's FastAPI example serves it."""

from app import app
from workers import WorkerEntrypoint, asgi


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await asgi.fetch(app, request, self.env)
