"""The output gate of WebSocket messages, through a real `edgelet dev`: a message a Durable
Object sends in the same turn as a storage write reaches the client only once that write is
committed (as workerd holds every outgoing message behind the actor's output locks).

The crash test has the object SIGKILL the whole platform right after ``put`` and ``send``,
before the end of the turn commits: the client must not have seen a count that the restarted
platform no longer has. The other tests check what the gate must not change: messages and a
close sent after a write still arrive, in order, and messages with no write pending go out
at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from crash import ARGS, restart
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CONFIG = """
name = "gate"
main = "gate.py"
compatibility_date = "2026-04-01"
durable_objects.bindings = [{ name = "COUNTERS", class_name = "Counter" }]
"""

APP = '''
import os, signal, time
from workers import DurableObject, Response, WebSocketPair, WorkerEntrypoint


class Counter(DurableObject):
    async def fetch(self, request):
        client, server = WebSocketPair()
        self.ctx.acceptWebSocket(server)
        return Response(None, status=101, web_socket=client)

    async def webSocketMessage(self, ws, message):
        if message == "get":
            ws.send(f"n={await self.ctx.storage.get('n')}")
            return
        n = (await self.ctx.storage.get("n") or 0) + 1
        self.ctx.storage.put("n", n)  # committed at the end of this turn
        ws.send(f"n={n}")
        if message == "bump-and-die":
            # the whole platform, before the turn ends: the write is lost with it. The pause
            # (blocking: the turn must not end) gives an ungated message time to reach the
            # client; without it the kill's RST could discard the frame and hide a missing gate
            time.sleep(0.3)
            os.killpg(os.getpgid(0), signal.SIGKILL)
        if message == "bump-twice-and-close":
            for other in self.ctx.getWebSockets():
                other.send(f"all n={n}")
            ws.close(4000, f"done at {n}")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return await self.env.COUNTERS.getByName("c").fetch(request)
'''


async def _ask(url: str, message: str) -> str:
    async with connect(url, compression=None) as ws:
        await ws.send(message)
        return str(await asyncio.wait_for(ws.recv(), 20))


@pytest.mark.slow
def test_a_message_about_a_write_lost_in_a_crash_never_reaches_the_client(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "gate.py": APP}, *ARGS)
    url = f"ws://127.0.0.1:{s.port}/"
    assert asyncio.run(_ask(url, "bump")) == "n=1"  # committed: it stays

    async def bump_and_die() -> list[str]:
        seen: list[str] = []
        async with connect(url, compression=None) as ws:
            await ws.send("bump-and-die")
            try:
                while True:
                    seen.append(str(await asyncio.wait_for(ws.recv(), 20)))
            except ConnectionClosed:
                return seen

    for _ in range(3):
        seen = asyncio.run(bump_and_die())
        assert s.proc is not None
        s.proc.wait(10)
        s = restart(dev, s)
        url = f"ws://127.0.0.1:{s.port}/"
        stored = asyncio.run(_ask(url, "get"))
        assert stored == "n=1", f"the count is {stored} after the kill"
        assert seen == [], (f"the client saw {seen} before the platform died, but the write it "
                            f"reports was lost: the restarted object has {stored}")


@pytest.mark.parametrize("handoff", ["1", "0"], ids=["isolate-serves-it", "host-serves-it"])
def test_messages_and_a_close_after_a_write_arrive_in_order_once_committed(
        dev: Any, monkeypatch: pytest.MonkeyPatch, handoff: str) -> None:
    monkeypatch.setenv("EDGELET_WS_HANDOFF", handoff)
    s = dev({"wrangler_like.toml": CONFIG, "gate.py": APP}, *ARGS)
    url = f"ws://127.0.0.1:{s.port}/"

    async def main() -> None:
        other = await connect(url, compression=None)
        async with connect(url, compression=None) as ws:
            for n in (1, 2, 3):
                await ws.send("bump")
                assert await asyncio.wait_for(ws.recv(), 20) == f"n={n}"
            await ws.send("bump-twice-and-close")
            assert await asyncio.wait_for(ws.recv(), 20) == "n=4"
            assert await asyncio.wait_for(ws.recv(), 20) == "all n=4"
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 20)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
            assert closed.value.rcvd.reason == "done at 4"
        assert await asyncio.wait_for(other.recv(), 20) == "all n=4"
        await other.send("get")  # no write pending: answered at once, with the committed count
        assert await asyncio.wait_for(other.recv(), 20) == "n=4"
        await other.close()

    asyncio.run(main())
