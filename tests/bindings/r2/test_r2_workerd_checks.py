"""Two checks workerd's R2 binding makes before a call leaves the Worker, which edgelet
skipped (each a TypeError on Cloudflare, src/workerd/api/r2-bucket.c++ and its tests):
a put with more than one checksum ("You cannot specify multiple hashing algorithms."), and an
``onlyIf`` dict whose etag is quoted ("Conditional ETag should not be wrapped in quotes"),
which edgelet unquoted, so a Worker passing ``obj.httpEtag`` worked locally only."""

from __future__ import annotations

from typing import Any

from r2_app import CONFIG

WORKER = r'''
import hashlib
from workers import Headers, Response, WorkerEntrypoint


async def outcome(coro):
    try:
        obj = await coro
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if obj is None else ("body" if hasattr(obj, "body") else "no body")


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        b = self.env.B
        first = await b.put("k", "one")
        data = b"two"
        return Response.json({
            "two_hashes": await outcome(b.put("k", data, md5=hashlib.md5(data).hexdigest(),
                                              sha256=hashlib.sha256(data).digest())),
            "after": await (await b.get("k")).text(),
            "one_hash": await outcome(b.put("h", data, sha1=hashlib.sha1(data).hexdigest())),
            "quoted": await outcome(b.get("k", onlyIf={"etagMatches": first.httpEtag})),
            "quoted_list": await outcome(b.get("k", onlyIf={"etagDoesNotMatch": ["x", first.httpEtag]})),
            "bare": await outcome(b.get("k", onlyIf={"etagMatches": first.etag})),
            "header": await outcome(b.get("k", onlyIf=Headers({"if-match": first.httpEtag}))),
            "put_quoted": await outcome(b.put("k", "three", onlyIf={"etagMatches": first.httpEtag})),
            "final": await (await b.get("k")).text(),
        })
'''


def test_one_checksum_and_bare_etags_as_workerd_requires(dev: Any) -> None:
    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = app.get("/")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["two_hashes"] == ("TypeError: env.B.put(): You cannot specify multiple hashing algorithms. Got md5 "
                                 "and sha256; pass one of md5, sha1, sha256, sha384, sha512 (the object's md5 is "
                                 "kept whichever you pass)")
    assert out["after"] == "one"  # nothing stored
    assert out["one_hash"] == "no body"  # stored: a put answers the object without a body
    for name in ("quoted", "quoted_list"):
        assert out[name].startswith("TypeError: env.B.get(): Conditional ETag should not be wrapped in quotes (\""), out
        assert "takes the bare etag, obj.etag, not obj.httpEtag" in out[name]
    assert out["put_quoted"].startswith("TypeError: env.B.put(): Conditional ETag should not be wrapped in quotes")
    assert out["bare"] == "body" and out["header"] == "body"
    assert out["final"] == "one"
