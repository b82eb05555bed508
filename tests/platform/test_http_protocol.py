"""The HTTP front joins the writes of a response into one send(): the bytes, their order
and connection handling are those of plain uvicorn."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from edgelet.http_protocol import CoalescingTransport


class _Transport:
    """The few transport calls CoalescingTransport makes, recorded."""

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.calls.append("close")
        self.closing = True

    def abort(self) -> None:
        self.calls.append("abort")
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1234) if name == "peername" else None


async def test_the_writes_of_one_iteration_leave_in_one_write_in_order() -> None:
    real = _Transport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"hello")
    assert real.calls == [] and transport.get_write_buffer_size() == 24
    await asyncio.sleep(0)
    assert real.calls == [b"HTTP/1.1 200 OK\r\n\r\nhello"]
    transport.write(b"next")
    await asyncio.sleep(0)
    assert real.calls[-1] == b"next"
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1234)  # the rest is the real one's


async def test_close_sends_what_is_pending_first_and_abort_drops_it() -> None:
    real = _Transport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"last words")
    transport.close()
    assert real.calls == [b"last words", "close"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert real.calls == [b"last words", "close"]
    real = _Transport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    transport.write(b"never sent")
    transport.abort()
    await asyncio.sleep(0)
    assert real.calls == ["abort"]


APP = {
    "wrangler_like.toml": """
        name = "hello"
        main = "hello.py"
    """,
    "hello.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("hi " + request.url.rsplit("/", 1)[1])
    """,
}


def _read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    chunks = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_pipelined_requests_get_whole_answers_in_order_and_close_is_honoured(dev: Any) -> None:
    server = dev(APP)
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     b"GET /two HTTP/1.1\r\nHost: localhost\r\n\r\n"
                     b"GET /three HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        raw = _read_until_closed(sock)  # the server closes after the third answer
    answers = raw.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert len(answers) == 3
    assert [a.rsplit(b"\r\n\r\n", 1)[1] for a in answers] == [b"hi one", b"hi two", b"hi three"]
    assert b"connection: close" in answers[2].lower()



async def test_a_stream_written_without_a_pause_is_handed_over_as_it_grows() -> None:
    real = _Transport()
    transport = CoalescingTransport(real, asyncio.get_running_loop())  # type: ignore[arg-type]
    chunk = b"x" * 16384
    for _ in range(40):  # 640 KiB in one iteration of the loop
        transport.write(chunk)
    assert real.calls and sum(map(len, real.calls)) >= 40 * 16384 - 65536
    assert max(map(len, real.calls)) <= 65536 + 16384  # never more than the threshold held back
    await asyncio.sleep(0)
    assert b"".join(real.calls) == chunk * 40


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"hi"})


async def test_an_idle_kept_alive_connection_closes_after_the_keep_alive_timeout_and_a_busy_one_stays() -> None:
    import uvicorn

    from edgelet.http_protocol import CoalescingHttpToolsProtocol
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(_hello, loop="none", lifespan="off", log_level="warning",
                                           timeout_keep_alive=1, http=CoalescingHttpToolsProtocol))
    serving = asyncio.ensure_future(server.serve(sockets=[listener]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        # busy: a request every 0.4 s for 2 s; the idle clock restarts with each
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(5):
            writer.write(request)
            assert (await asyncio.wait_for(reader.readuntil(b"hi"), 5)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(0.4)
        # then idle: closed about 1 s after the last answer, not before
        loop = asyncio.get_running_loop()
        writer.write(request)
        await asyncio.wait_for(reader.readuntil(b"hi"), 5)
        answered = loop.time()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF: the server closed it
        idle = loop.time() - answered
        assert 0.9 <= idle < 2.5, idle
        writer.close()
    finally:
        server.should_exit = True
        await serving
