"""KV input a Worker can pass that the isolate channel (msgpack) cannot carry: an int past
64 bits, a lone surrogate in a key, a prefix or metadata. Each used to fail with msgpack's
words ("OverflowError: Integer value out of range", a bare UnicodeEncodeError) naming
neither the binding, the key nor the rule; now the Worker gets the same ValueError the rule
gives for any other bad value, and nothing is written. Real `edgelet dev`, real requests."""

from __future__ import annotations

from typing import Any

import pytest

APP = {
    "wrangler_like.toml": """
name = "kvin"
main = "w.py"
kv_namespaces = [{ binding = "KV", id = "kvin" }]
""",
    # /call runs one KV call named by the test and answers "<ExceptionType>: message" or the result
    "w.py": '''
from workers import Response, WorkerEntrypoint

CALLS = {
    "ttl_huge": lambda kv: kv.put("k", "v", expirationTtl=10**30),
    "exp_huge": lambda kv: kv.put("k", "v", expiration=2**70),
    "exp_huge_ttl_ok": lambda kv: kv.put("both", "v", expiration=2**70, expirationTtl=600),
    "put_surrogate_key": lambda kv: kv.put("k\\ud800", "v"),
    "get_surrogate_key": lambda kv: kv.get("k\\ud800"),
    "delete_surrogate_key": lambda kv: kv.delete("k\\ud800"),
    "bulk_surrogate_key": lambda kv: kv.get(["a", "\\udfff"]),
    "meta_surrogate": lambda kv: kv.put("k", "v", metadata={"a": "\\ud800"}),
    "list_surrogate_prefix": lambda kv: kv.list(prefix="\\ud800"),
    "list_limit_huge": lambda kv: kv.list(limit=10**30),
    "list_cursor_surrogate": lambda kv: kv.list(cursor="\\ud800"),
    "cache_ttl_nan": lambda kv: kv.get("k", cacheTtl=float("nan")),
    "get_k": lambda kv: kv.get("k"),
    "get_both": lambda kv: kv.list(),
}

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        name = request.url.rsplit("/", 1)[1]
        try:
            return Response(repr(await CALLS[name](self.env.KV)))
        except Exception as exc:
            return Response(f"{type(exc).__name__}: {exc}")
''',
}


@pytest.fixture(scope="module")
def kv(shared_dev: Any) -> Any:
    return shared_dev(APP)


@pytest.mark.parametrize("call,words", [
    ("ttl_huge", "ValueError: env.KV.put(): expirationTtl 1000000000000000000000000000000 for key "
                 "'k' is out of range; use 60 to 2147483647 seconds"),
    ("exp_huge", "ValueError: env.KV.put(): expiration 1180591620717411303424 for key 'k' is out of "
                 "range; use epoch seconds from now + 60 to 2147483647"),
    ("put_surrogate_key", "ValueError: env.KV.put(): key 'k\\ud800' is not valid Unicode"),
    ("get_surrogate_key", "ValueError: env.KV.get(): key 'k\\ud800' is not valid Unicode"),
    ("delete_surrogate_key", "ValueError: env.KV.delete(): key 'k\\ud800' is not valid Unicode"),
    ("bulk_surrogate_key", "ValueError: env.KV.get(): key '\\udfff' is not valid Unicode"),
    ("meta_surrogate", "ValueError: env.KV.put(): metadata for key 'k' is not valid Unicode"),
    ("list_surrogate_prefix", "ValueError: env.KV.list(): prefix '\\ud800' is not valid Unicode"),
    ("list_limit_huge", "ValueError: env.KV.list(): limit 1000000000000000000000000000000 is out of "
                        "range; use 1 to 1000"),
    ("list_cursor_surrogate", "ValueError: env.KV.list(): cursor '\\ud800' is not one list() returned"),
    ("cache_ttl_nan", "ValueError: env.KV.get(): cacheTtl nan is not a finite number of seconds"),
])
def test_input_msgpack_cannot_carry_is_refused_by_its_rule(kv: Any, call: str, words: str) -> None:
    r = kv.get(f"/call/{call}")
    assert r.status_code == 200
    assert r.text.startswith(words), r.text
    assert kv.get("/call/get_k").text == "None"  # nothing was written


def test_expiration_is_not_sent_when_expiration_ttl_wins(kv: Any) -> None:
    """Cloudflare uses expirationTtl when both are given; the ignored expiration may be any
    number, even one the channel cannot carry."""
    assert kv.get("/call/exp_huge_ttl_ok").text == "None"
    page = kv.get("/call/get_both").text
    assert "'name': 'both'" in page and "'expiration': " in page
