"""The Durable Object class of bench/apps/do_cross, in a Worker of its own."""

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
        return Response("the objects Worker; call it through caller")
