"""A hibernatable socket's message to a live object with a free input gate runs at once,
in one coroutine, without a Task unless the handler awaits (isolate/websockets.py
``message_now``, edgelet.runtime.eager), through a real `edgelet dev`.

What must not change with that shortcut, as a user would see it:
- handlers that await are still one at a time per object (the input gate), answers on one
  socket stay in order, messages from other sockets wait their turn;
- from the handler's first line there is a current task: ``asyncio.timeout`` works, and it
  is the same task after an ``await``;
- ``blockConcurrencyWhile`` started in a handler keeps the next event out until it is done;
- a handler that raises is logged once, and the socket and the object keep serving;
- a handler may call its own object back through a stub (its event parks, as before).
"""

from __future__ import annotations

import contextlib

import pytest
from websockets.sync.client import connect

CONFIG = """
name = "eager"
main = "eager.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "ROOMS", class_name = "Room" }]
"""

APP = '''
import asyncio
from urllib.parse import urlparse
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Room(DurableObject):
    def __init__(self, ctx, env):
        super().__init__(ctx, env)
        self.inside = 0
        self.loaded = []

    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        kind, _, arg = message.partition(":")
        if kind == "slow":  # suspends twice; two events inside at once would show in `inside`
            self.inside += 1
            most = self.inside
            await asyncio.sleep(0.002)
            await self.ctx.storage.put("last", arg)
            self.inside -= 1
            ws.send(f"slow:{arg}:{most}")
        elif kind == "task":
            first = asyncio.current_task()
            async with asyncio.timeout(5):
                await asyncio.sleep(0.001)
            ws.send(f"task:{first is not None and first is asyncio.current_task()}")
        elif kind == "block":
            async def load():
                await asyncio.sleep(0.05)
                self.loaded.append(arg)
            self.ctx.blockConcurrencyWhile(load)
            ws.send("block:started")
        elif kind == "loaded":
            ws.send("loaded:" + ",".join(self.loaded))
        elif kind == "raise":
            raise ValueError(f"no such command {arg}")
        elif kind == "self":
            ws.send(f"self:{await self.env.ROOMS.getByName(arg).count()}")
        else:
            ws.send(f"echo:{message}")

    async def count(self):
        return len(self.ctx.getWebSockets())


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = urlparse(request.url).path.split("/")[2]
        return await self.env.ROOMS.getByName(name).fetch(request)
'''

_OPEN = contextlib.ExitStack()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    _OPEN.close()


@pytest.fixture(scope="module")
def app(shared_dev):
    return shared_dev({"wrangler_like.toml": CONFIG, "eager.py": APP}, "--in-memory")


def open_socket(server, room: str):
    ws = _OPEN.enter_context(connect(f"ws://127.0.0.1:{server.port}/room/{room}"))
    ws.send("hello")  # the object is live (built) from here on: the next messages may go eagerly
    assert ws.recv(10) == "echo:hello"
    return ws


def test_handlers_that_await_run_one_at_a_time_and_answer_in_order(app):
    ann = open_socket(app, "gate")
    bob = open_socket(app, "gate")
    for i in range(15):
        ann.send(f"slow:a{i}")
        bob.send(f"slow:b{i}")
    got_ann = [ann.recv(10) for _ in range(15)]
    got_bob = [bob.recv(10) for _ in range(15)]
    assert got_ann == [f"slow:a{i}:1" for i in range(15)]
    assert got_bob == [f"slow:b{i}:1" for i in range(15)]


def test_a_handler_has_its_task_from_the_first_line(app):
    ws = open_socket(app, "task")
    for _ in range(3):
        ws.send("task")
        assert ws.recv(10) == "task:True"


def test_block_concurrency_while_in_a_handler_keeps_the_next_event_out(app):
    ann = open_socket(app, "block")
    bob = open_socket(app, "block")
    ann.send("block:x")
    assert ann.recv(10) == "block:started"  # written at once; the load runs for 50 ms more
    bob.send("loaded")  # another socket: its message waits for the gate
    assert bob.recv(10) == "loaded:x"


def test_a_handler_that_raises_is_logged_once_and_the_socket_serves_on(app):
    ws = open_socket(app, "raise")
    ws.send("raise:quux")
    ws.send("after")
    assert ws.recv(10) == "echo:after"
    log = app.wait_for_log("no such command quux")
    assert log.count("WebSocket message handler raised ValueError: no such command quux") == 1


def test_a_handler_may_call_its_own_object(app):
    ws = open_socket(app, "selfcall")
    ws.send("self:selfcall")
    assert ws.recv(10) == "self:1"
