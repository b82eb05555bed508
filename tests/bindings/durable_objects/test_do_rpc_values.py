"""Durable Object RPC refuses what Cloudflare's RPC cannot carry, as service-binding RPC does
(edgelet.runtime.rpc_values): workers-py's ``python_to_rpc`` refuses a tuple, a bytearray and
an awaitable, and an instance of the Worker's own class has no JavaScript form. edgelet
pickled them, so a call that worked here failed once deployed. The TypeError names the
argument (or the returned value), where inside it, and the call."""

from __future__ import annotations

from typing import Any

APP = {
    "wrangler_like.toml": """
        name = "app"
        main = "app.py"
        durable_objects.bindings = [{ name = "OBJ", class_name = "Box" }]
    """,
    "app.py": """
        import asyncio, datetime
        from workers import DurableObject, Response, WorkerEntrypoint

        class Point:
            def __init__(self, x):
                self.x = x

        class Box(DurableObject):
            def __init__(self, ctx, env):
                super().__init__(ctx, env)
                self.shape = Point(1)

            async def echo(self, *args, **kwargs):
                return [list(args), kwargs]

            async def give(self, what):
                return {"tuple": (1, 2), "point": [Point(2)], "bytearray": bytearray(b"x")}[what]

        async def later():
            return 1

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                op = request.url.rsplit("/", 1)[1]
                o = self.env.OBJ.getByName("b1")
                try:
                    if op == "ok":
                        when = datetime.datetime(2026, 1, 2)
                        got = await o.echo("s", 1, 2.5, True, None, b"b", [1, {"k": {2}}], when, key={"v": [3]})
                        return Response.json(got == [["s", 1, 2.5, True, None, b"b", [1, {"k": {2}}], when],
                                                     {"key": {"v": [3]}}])
                    if op == "tuple":
                        await o.echo("a", (1, 2))
                    if op == "nested":
                        await o.echo({"rows": [[1], bytearray(b"x")]})
                    if op == "kwarg":
                        await o.echo(where=Point(3))
                    if op == "awaitable":
                        coro = later()
                        try:
                            await o.echo(coro)
                        finally:
                            coro.close()
                    if op.startswith("give-"):
                        await o.give(op[5:])
                    if op == "property":
                        await o.shape
                except TypeError as exc:
                    return Response(str(exc))
                return Response("no error")
    """,
}


def test_do_rpc_refuses_what_cloudflare_cannot_send_and_names_where(shared_dev: Any) -> None:
    s = shared_dev(APP)
    assert s.get("/ok").json() is True
    text = s.get("/tuple").text
    assert text.startswith("<class 'tuple'> cannot be sent over RPC. (argument 2 of Box b1.echo(): "
                           "send a list instead"), text
    text = s.get("/nested").text
    assert "<class 'bytearray'> cannot be sent over RPC. (argument 1 of Box b1.echo()['rows'][1]: " \
           "send bytes instead" in text, text
    text = s.get("/kwarg").text
    assert "app.Point cannot be sent over RPC. (argument where= of Box b1.echo():" in text, text
    assert "dataclasses.asdict" in text, text
    text = s.get("/awaitable").text
    assert text.startswith("Awaitable <class 'coroutine'> cannot be sent over RPC. (argument 1 of "
                           "Box b1.echo(): await it first"), text
    text = s.get("/give-tuple").text
    assert "<class 'tuple'> cannot be sent over RPC. (the value Box.give() of Durable Object b1 " \
           "returned: send a list instead" in text, text
    text = s.get("/give-point").text
    assert "app.Point cannot be sent over RPC. (the value Box.give() of Durable Object b1 returned[0]:" \
           in text, text
    text = s.get("/property").text
    assert "app.Point cannot be sent over RPC. (the value Box.shape of Durable Object b1 returned:" \
           in text, text
