"""edgelet.runtime.http_head: the bytes of a response head the isolate writes, and the
headers it refuses to write (each becomes a 500 naming the header: test_http_hardening)."""

from __future__ import annotations

import pytest

from edgelet.runtime.http_head import BadHeader, header_block, status_line


def test_status_line_matches_uvicorns_and_allows_unnamed_codes() -> None:
    assert status_line(200) == b"HTTP/1.1 200 OK\r\n"
    assert status_line(418) == b"HTTP/1.1 418 I'm a Teapot\r\n"
    assert status_line(599) == b"HTTP/1.1 599 \r\n"


def test_framing_headers_are_the_servers_to_write() -> None:
    block, close = header_block([("content-type", "text/plain"), ("content-length", "999"),
                                 ("transfer-encoding", "chunked"), ("x-a", "1")])
    assert block == b"content-type: text/plain\r\nx-a: 1\r\n"
    assert close is False


def test_connection_close_from_the_worker_is_reported() -> None:
    assert header_block([("connection", "Close")]) == (b"connection: Close\r\n", True)


@pytest.mark.parametrize(("headers", "named"), [
    ([("x-bad", "a\r\nset-cookie: x=1")], "control character"),
    ([("bad name", "1")], "not a valid HTTP token"),
    ([("x-snow", "☃")], "not Latin-1"),
])
def test_unwritable_headers_raise_naming_the_header(headers: list[tuple[str, str]], named: str) -> None:
    with pytest.raises(BadHeader) as info:
        header_block(headers)
    assert named in str(info.value)
    assert repr(headers[0][0]) in str(info.value)
