"""The HTTP front against hostile or broken clients, over real sockets to a real `edgelet dev`
(SPEC 5): a body cut short, forged Host headers, huge or slow header blocks, `/cdn-cgi/`
from other machines, odd Authorization bytes."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
from conftest import non_loopback_ip
from http_app import ARGS, FILES


def raw(s: Any, data: bytes, *, host: str = "127.0.0.1", timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection and return everything the server answers."""
    with socket.create_connection((host, s.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)


def kv_value(s: Any, key: str) -> Any:
    body = s.api("GET", f"/kv/kv/values/{key}")
    return body["result"] if body["success"] else None


def test_body_cut_short_never_reaches_the_worker(dev: Any) -> None:
    """D1: Content-Length 100, 3 bytes, then the client goes away."""
    s = dev(FILES, *ARGS)
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nabc")
    s.wait_for_log("went away after 3 of 100 body bytes", 15)
    assert "went away after 3 of 100 body bytes" in s.logs()
    assert kv_value(s, "last-body") is None, "the Worker ran on a body that ended early"
    # the same to the control API: nothing is stored
    with socket.create_connection(("127.0.0.1", s.port)) as sock:
        sock.sendall(b"PUT /cdn-cgi/edgelet/api/kv/kv/values/cut HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Length: 100\r\n\r\nabc")
    time.sleep(0.5)
    assert kv_value(s, "cut") is None
    # a whole body still runs the Worker
    assert s.post("/", content=b"whole").status_code == 200
    assert kv_value(s, "last-body") == "whole"


BAD_HOSTS = ["evil.example/admin?x=1#", "user@evil.example", "evil.example:80@other", "a b",
             "localhost:99999", "localhost:", "[::1", "[not-v6]:80", "evil.example#x", "x\\y",
             "evil.example?q"]


def test_invalid_host_gets_400_and_never_reaches_the_worker(dev: Any) -> None:
    """D3: Host picks the Worker and nothing else; an invalid Host gets 400."""
    s = dev(FILES, *ARGS)
    for bad_host in BAD_HOSTS:
        answer = raw(s, b"GET /real?q=1 HTTP/1.1\r\nHost: " + bad_host.encode()
                     + b"\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400"), (bad_host, answer[:200])
        assert b"not a valid host[:port]" in answer, (bad_host, answer[:300])
    assert kv_value(s, "last-body") is None
    # an empty Host is allowed (RFC 9112 3.2): the address the request came in on is used
    answer = raw(s, b"GET /path HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert answer.endswith(f"http://127.0.0.1:{s.port}/path".encode()), answer[-200:]


def test_url_the_worker_sees_is_built_from_the_validated_host(dev: Any) -> None:
    s = dev(FILES, *ARGS)
    for host, url in [(f"localhost:{s.port}", f"http://localhost:{s.port}/p?q=1"),
                      (f"other.localhost:{s.port}", f"other http://other.localhost:{s.port}/p?q=1"),
                      (f"[::1]:{s.port}", f"http://[::1]:{s.port}/p?q=1"),
                      ("127.0.0.1", "http://127.0.0.1/p?q=1")]:
        r = s.get("/p?q=1", headers={"host": host})
        assert r.status_code == 200 and r.text == url, (host, r.text)
    two = raw(s, b"GET / HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
    assert two.startswith(b"HTTP/1.1 400") and b"more than one Host" in two
    star = raw(s, b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert star.startswith(b"HTTP/1.1 400") and b"not a path" in star


def test_header_block_over_64_kib_gets_431(dev: Any) -> None:
    s = dev(FILES, *ARGS)
    big = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (65 * 1024) + b"\r\n\r\n"
    assert raw(s, big).startswith(b"HTTP/1.1 431")
    many = (b"GET / HTTP/1.1\r\nHost: localhost\r\n"
            + b"".join(b"X-%d: %s\r\n" % (i, b"b" * 100) for i in range(700)) + b"\r\n")
    assert raw(s, many).startswith(b"HTTP/1.1 431")
    endless = b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: " + b"a" * (200 * 1024)  # never ends
    assert raw(s, endless).startswith(b"HTTP/1.1 431")
    fits = (b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Big: " + b"a" * (60 * 1024)
            + b"\r\n\r\n")
    assert raw(s, fits).startswith(b"HTTP/1.1 200")


def test_connection_without_whole_headers_is_closed_after_the_timeout(dev: Any) -> None:
    s = dev(FILES, *ARGS, "--header-timeout", "1")
    started = time.monotonic()
    answer = raw(s, b"GET / HTTP/1.1\r\nHost: loc")                  # half a header block
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert 0.9 < time.monotonic() - started < 5
    started = time.monotonic()
    assert raw(s, b"") == b""                                         # nothing at all: closed
    assert 0.9 < time.monotonic() - started < 5
    # many half-open connections all go, and the server still serves
    socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(50)]
    for sock in socks:
        sock.sendall(b"GET / HTTP/1.1\r\n")
    for sock in socks:  # each waits as long as it needs (the timeout is 1 s), not a fixed sleep
        sock.settimeout(10)
        assert sock.recv(100).startswith(b"HTTP/1.1 408")
        sock.close()
    assert s.get("/").status_code == 200


def test_default_header_timeout_is_10_seconds() -> None:
    from edgelet.http_protocol import HEADER_TIMEOUT, MAX_HEADER_BYTES, CoalescingHttpToolsProtocol
    assert HEADER_TIMEOUT == 10 and MAX_HEADER_BYTES == 64 * 1024
    assert CoalescingHttpToolsProtocol.configured(header_timeout=2).header_timeout == 2


@pytest.fixture
def remote(dev: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    monkeypatch.setenv("EDGELET_API_TOKEN", "s3cret")
    return dev(FILES, *ARGS, "--ip", "0.0.0.0"), ip


def test_every_cdn_cgi_path_refuses_remote_clients_without_the_token(remote: tuple[Any, str]) -> None:
    """D5: the scheduled handler has the control API's guard."""
    s, ip = remote
    base = f"http://{ip}:{s.port}"
    for method, path in [("GET", "/cdn-cgi/handler/scheduled"), ("POST", "/cdn-cgi/handler/scheduled"),
                         ("GET", "/cdn-cgi/edgelet/api/workers"), ("GET", "/cdn-cgi/anything")]:
        r = httpx.request(method, base + path, timeout=10)
        assert r.status_code == 403, (method, path, r.status_code, r.text)
        assert "EDGELET_API_TOKEN" in r.json()["errors"][0]["message"]
    assert kv_value(s, "cron-ran") is None, "the scheduled handler ran for a remote client"
    ok = httpx.get(base + "/cdn-cgi/handler/scheduled", headers={"authorization": "Bearer s3cret"},
                   timeout=10)
    assert ok.status_code == 200 and kv_value(s, "cron-ran") == "yes"
    assert httpx.get(base + "/", timeout=10).status_code == 200  # Worker traffic is not guarded


def test_non_utf8_authorization_is_403_not_500(remote: tuple[Any, str]) -> None:
    """D6: with EDGELET_API_TOKEN set, Authorization bytes that are not UTF-8."""
    s, ip = remote
    for host in (ip, "127.0.0.1"):
        answer = raw(s, b"GET /cdn-cgi/edgelet/api/workers HTTP/1.1\r\nHost: localhost\r\n"
                        b"Authorization: Bearer \xff\xfe\x80\r\nConnection: close\r\n\r\n", host=host)
        expected = b"HTTP/1.1 403" if host == ip else b"HTTP/1.1 200"  # loopback needs no token
        assert answer.startswith(expected), (host, answer[:300])
    assert "Traceback" not in s.logs()
