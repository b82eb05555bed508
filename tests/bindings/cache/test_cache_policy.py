"""The Cache API's rules as pure functions (bindings/cache/policy.py): Cache-Control parsing,
what put stores and for how long, and the match answer to Range and conditional headers."""

from __future__ import annotations

from email.utils import formatdate

import pytest

from edgelet.bindings.cache import policy

NOW = 1_800_000_000.0


def test_cache_control_directives_are_case_insensitive_and_unquoted() -> None:
    assert policy.cache_control('Max-Age=60, private="Set-Cookie", no-transform') == {
        "max-age": "60", "private": "Set-Cookie", "no-transform": ""}


@pytest.mark.parametrize("headers,ttl", [
    ([["cache-control", "max-age=60"]], 60),
    ([["cache-control", "s-maxage=5, max-age=60"]], 5),
    ([["Expires", formatdate(NOW + 300, usegmt=True)], ["cache-control", "public"]], 300),
    ([["cache-control", "max-age=60"], ["expires", formatdate(NOW + 300, usegmt=True)]], 60),
    ([], 7200),  # Cloudflare's default edge TTL for a 200
])
def test_how_long_an_entry_is_kept(headers: list[list[str]], ttl: float) -> None:
    assert policy.decide(200, headers, NOW).ttl == ttl


@pytest.mark.parametrize("status,headers,why", [
    (200, [["cache-control", "no-store"]], "no-store"),
    (200, [["cache-control", "no-cache"]], "no-cache"),
    (200, [["cache-control", "private, max-age=60"]], "private"),
    (200, [["cache-control", "max-age=0"]], "already expired"),
    (200, [["expires", "not a date"]], "already expired"),
    (200, [["set-cookie", "a=1"], ["cache-control", "max-age=60"]], "Set-Cookie"),
    (500, [], "status 500 has no default edge TTL"),
])
def test_what_put_does_not_store_and_why(status: int, headers: list[list[str]], why: str) -> None:
    decision = policy.decide(status, headers, NOW)
    assert decision.ttl is None and why in decision.reason


def test_private_set_cookie_stores_the_response_without_its_cookie() -> None:
    decision = policy.decide(200, [["Set-Cookie", "a=1"], ["cache-control", "private=Set-Cookie, max-age=9"],
                                   ["x", "y"]], NOW)
    assert decision.ttl == 9
    assert [n for n, _ in decision.headers] == ["cache-control", "x"]


@pytest.mark.parametrize("method,status,headers,words", [
    ("POST", 200, [], "non-GET request (method POST)"),
    ("GET", 206, [], "206 Partial Content"),
    ("GET", 200, [["Vary", "Accept, *"]], "Vary: *"),
])
def test_put_refusals(method: str, status: int, headers: list[list[str]], words: str) -> None:
    refusal = policy.put_refusal(method, status, headers)
    assert refusal is not None and words in refusal
    assert policy.put_refusal("GET", 200, [["Vary", "Accept"]]) is None


BODY = b"0123456789"


@pytest.mark.parametrize("rng,status,got,content_range", [
    ("bytes=2-4", 206, b"234", "bytes 2-4/10"),
    ("bytes=8-", 206, b"89", "bytes 8-9/10"),
    ("bytes=-3", 206, b"789", "bytes 7-9/10"),
    ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
    ("bytes=10-", 416, b"", "bytes */10"),
    ("bytes=0-1,4-5", 200, BODY, None),   # several ranges: the whole body
    ("items=0-1", 200, BODY, None),       # not bytes: ignored
    ("bytes=4-2", 200, BODY, None),       # malformed: ignored
])
def test_range_on_match(rng: str, status: int, got: bytes, content_range: str | None) -> None:
    s, headers, body = policy.match_answer(200, [["content-length", "10"]], BODY, {"range": rng})
    assert (s, body) == (status, got)
    h = dict(headers)
    assert h.get("content-range") == content_range
    assert h["cf-cache-status"] == "HIT" and "content-length" not in h


def test_conditional_requests_on_match() -> None:
    stored = [["etag", 'W/"v1"'], ["last-modified", "Tue, 01 Dec 2026 00:00:00 GMT"]]
    assert policy.match_answer(200, stored, BODY, {"if-none-match": '"v0", "v1"'})[0] == 304
    assert policy.match_answer(200, stored, BODY, {"if-none-match": "*"})[0] == 304
    assert policy.match_answer(200, stored, BODY, {"if-none-match": '"v2"'})[0] == 200
    since = {"if-modified-since": "Wed, 02 Dec 2026 00:00:00 GMT"}
    assert policy.match_answer(200, stored, BODY, since)[:3] == (304, stored + [["cf-cache-status", "HIT"]], b"")
    earlier = {"if-modified-since": "Mon, 30 Nov 2026 00:00:00 GMT"}
    assert policy.match_answer(200, stored, BODY, earlier)[0] == 200
