"""A second Worker, reached from `api` through a service binding (fetch and RPC)."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response.json({"worker": "greeter", "url": request.url})

    async def greet(self, name):
        return f"{self.env.GREETING}, {name}!"
