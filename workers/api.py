"""The demo app's front door: routes HTTP requests to the other Workers and bindings."""

from workers import Response, WorkerEntrypoint


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        path = "/" + request.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
        if path == "/":
            return Response(f"Hello from {self.env.APP_NAME}!")
        if path == "/greet":
            name = request.url.split("name=", 1)[1] if "name=" in request.url else "world"
            # A service binding: stays inside edgelet, no network hop.
            return Response(await self.env.GREETER.greet(name))
        if path == "/greeter":
            return await self.env.GREETER.fetch("/hello")
        if path == "/wasm":
            # A service binding to the Wasm Worker (workers/hello_wasm.wat).
            return await self.env.WASM.fetch("/from-api")
        return Response("Not found", status=404)

    async def scheduled(self, controller):
        print(f"cron {controller.cron} fired")
