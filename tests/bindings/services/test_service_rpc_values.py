"""Values a service binding's RPC cannot carry on Cloudflare are refused here too. Cloudflare's
Python SDK converts RPC arguments and results to JavaScript (``python_to_rpc`` in
cloudflare/workers-py): a tuple or a ``bytearray`` is ``TypeError: <class 'tuple'> cannot be
sent over RPC.``, an awaitable likewise, and an instance of one's own class has no JavaScript
form. edgelet pickled them all (an instance even arrived rebuilt in the other Worker), so the
call worked locally and failed once deployed. Lists, dicts, sets, bytes, datetimes, None and
functions still go through."""

from __future__ import annotations

from typing import Any

CONFIG = """
    [[workers]]
    name = "front"
    main = "front.py"
    services = [{ binding = "BACK", service = "back" }]

    [[workers]]
    name = "back"
    main = "back.py"
"""

BACK = r'''
import datetime
from workers import Response, WorkerEntrypoint


class Point:
    def __init__(self):
        self.x = 1


class Default(WorkerEntrypoint):
    async def echo(self, value):
        return value

    async def pair(self):
        return (1, 2)

    async def point(self):
        return {"p": [Point()]}

    async def fetch(self, request):
        return Response("back")
'''

FRONT = r'''
import datetime
from workers import Response, WorkerEntrypoint


class Point:
    def __init__(self):
        self.x = 1


async def outcome(coro):
    try:
        return ["ok", repr(await coro)]
    except Exception as exc:
        return [type(exc).__name__, str(exc)]


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        back = self.env.BACK

        async def later():
            return 1

        pending = later()
        out = {
            "tuple": await outcome(back.echo((1, 2))),
            "nested": await outcome(back.echo({"rows": [[1, ("a", "b")]]})),
            "bytearray": await outcome(back.echo(bytearray(b"x"))),
            "instance": await outcome(back.echo(Point())),
            "awaitable": await outcome(back.echo(pending)),
            "returned_tuple": await outcome(back.pair()),
            "returned_instance": await outcome(back.point()),
            "fine": await outcome(back.echo({"l": [1, "a", None], "s": {1}, "b": b"x",
                                             "d": datetime.datetime(2020, 1, 1)})),
        }
        pending.close()
        try:
            back._private
        except AttributeError as exc:
            out["private"] = str(exc)
        return Response.json(out)
'''


def test_rpc_refuses_what_cloudflare_cannot_send(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "front.py": FRONT, "back.py": BACK})
    r = s.get("/")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["tuple"] == ["TypeError", "<class 'tuple'> cannot be sent over RPC. (argument 1 of env.BACK.echo(): "
                                         "send a list instead; Cloudflare's Python SDK refuses it)"]
    assert out["nested"][1].startswith("<class 'tuple'> cannot be sent over RPC. (argument 1 of "
                                       "env.BACK.echo()['rows'][0][1]: send a list instead")
    assert out["bytearray"][1].startswith("<class 'bytearray'> cannot be sent over RPC. (argument 1 of "
                                          "env.BACK.echo(): send bytes instead")
    assert out["instance"][1].startswith("front.Point cannot be sent over RPC. (argument 1 of env.BACK.echo(): ")
    assert "send a dict of its fields, e.g. dataclasses.asdict(value) or vars(value)" in out["instance"][1]
    assert out["awaitable"][1].startswith("Awaitable <class 'coroutine'> cannot be sent over RPC.")
    assert out["returned_tuple"][0] == "TypeError"
    assert "cannot be sent over RPC. (the value Default.pair() of Worker 'back' returned" in out["returned_tuple"][1]
    assert "back.Point cannot be sent over RPC. (the value Default.point() of Worker 'back' returned['p'][0]" \
        in out["returned_instance"][1]
    assert out["fine"][0] == "ok" and "datetime.datetime(2020, 1, 1, 0, 0)" in out["fine"][1]
    assert out["private"].startswith("env.BACK has no attribute '_private': names starting with '_' are not "
                                     "callable over RPC")
