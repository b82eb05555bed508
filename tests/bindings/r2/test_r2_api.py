"""R2 through a real `edgelet dev` Worker: the API of SPEC 8 as a Worker sees it."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import WORKER_HELPERS
from r2_app import CONFIG

WORKER = r'''
import datetime, hashlib, json
from workers import Headers, Response, WorkerEntrypoint
from worker_helpers import error_of

MiB = 1024 * 1024


def show(obj):
    if obj is None:
        return None
    out = {"key": obj.key, "size": obj.size, "etag": obj.etag, "httpEtag": obj.http_etag,
           "version": obj.version, "httpMetadata": {k: str(v) for k, v in obj.httpMetadata.items()},
           "customMetadata": dict(obj.custom_metadata), "checksums": obj.checksums.toJSON(),
           "storageClass": obj.storageClass, "uploaded": obj.uploaded.isoformat(),
           "has_body": hasattr(obj, "body")}
    if "range" in obj:
        out["range"] = dict(obj.range)
    return out


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        b = self.env.B
        path = request.url.split("/", 3)[3].split("?")[0]
        name, _, key = path.partition("/")
        if name == "o":  # a tiny object server: PUT stores, GET serves with headers and ranges
            if request.method == "PUT":
                obj = await b.put(key, request.body, httpMetadata=request.headers,
                                  customMetadata={"by": "test"})
                return Response.json(show(obj))
            if request.method == "DELETE":
                await b.delete(key)
                return Response("deleted")
            obj = await b.get(key, onlyIf=request.headers, range=request.headers)
            if obj is None:
                return Response("not found", status=404)
            headers = Headers()
            obj.writeHttpMetadata(headers)
            headers.set("etag", obj.httpEtag)
            if not hasattr(obj, "body"):
                return Response(None, status=304, headers=headers)
            return Response(obj.body, status=206 if obj.range["length"] < obj.size else 200, headers=headers)
        return Response.json(await getattr(self, "s_" + name)(b))

    async def s_basics(self, b):
        expiry = datetime.datetime(2030, 1, 2, tzinfo=datetime.timezone.utc)
        put = await b.put("k", "hello", httpMetadata={"content_type": "text/plain", "cacheControl": "max-age=60",
                                                      "cacheExpiry": expiry},
                          custom_metadata={"a": "1"}, sha256=hashlib.sha256(b"hello").hexdigest())
        got = await b.get("k")
        head = await b.head("k")
        headers = Headers()
        got.writeHttpMetadata(headers)
        text = await got.text()
        used = got.bodyUsed
        await b.put("j", json.dumps({"x": [1, 2]}))
        j = await (await b.get("j")).json()
        stream = await b.get("j")
        chunks = [c async for c in stream.body]
        copy = await b.put("copy", (await b.get("k")).body)
        await b.put("empty", None)
        empty = await b.get("empty")
        before = await b.head("k")
        not_modified = await b.get("k", onlyIf={"etagDoesNotMatch": before.etag})
        await b.put("k", b"second")
        after = await b.get("k")
        await b.delete(["k", "absent", "j"])
        return {"put": show(put), "get": show(got), "head": show(head), "text": text, "used": used,
                "headers": dict(headers.items()), "json": j, "chunks": len(chunks),
                "copy": show(copy), "empty": [empty.size, await empty.text()],
                "versions": [before.version != after.version, await after.text()],
                "gone": [await b.head("k"), await b.get("j")],
                "not_modified": show(not_modified)}

    async def s_big(self, b):
        data = bytes(range(256)) * (12 * 4096)  # 12 MiB
        put = await b.put("big", data)

        async def gen():
            for i in range(7):
                yield bytes([i]) * (MiB + 3)
        streamed = await b.put("gen", gen())
        got = await b.get("big")
        n = 0
        h = hashlib.md5()
        async for chunk in got.body:
            n += 1
            h.update(chunk)
        mid = await b.get("big", range={"offset": 5 * MiB - 2, "length": 4})
        return {"etag": put.etag, "md5": hashlib.md5(data).hexdigest(), "read_md5": h.hexdigest(), "chunks": n,
                "gen": [streamed.size, streamed.etag,
                        hashlib.md5(b"".join(bytes([i]) * (MiB + 3) for i in range(7))).hexdigest()],
                "mid": list(await mid.bytes()), "want_mid": list(data[5 * MiB - 2: 5 * MiB + 2])}

    async def s_ranges(self, b):
        await b.put("r", "0123456789")
        out = {}
        for name, rng in [("off_len", {"offset": 2, "length": 3}), ("off", {"offset": 7}),
                          ("suffix", {"suffix": 4}), ("clamp", {"offset": 8, "length": 50}),
                          ("header", Headers({"range": "bytes=1-3"})), ("open", Headers({"range": "bytes=6-"})),
                          ("hsuffix", Headers({"range": "bytes=-2"})), ("hbad", Headers({"range": "bytes=50-60"}))]:
            obj = await b.get("r", range=rng)
            out[name] = [await obj.text(), dict(obj["range"])]
        out["past"] = await error_of(b.get("r", range={"offset": 11}))
        out["past_len"] = await error_of(b.get("r", range={"offset": 10, "length": 1}))
        out["zero"] = await error_of(b.get("r", range={"suffix": 0}))
        out["type"] = await error_of(b.get("r", range={"offset": "x"}))
        return out

    async def s_conditionals(self, b):
        first = await b.put("c", "one")
        etag = first.etag
        up = first.uploaded
        hour = datetime.timedelta(hours=1)
        out = {}
        out["match_quoted"] = await error_of(b.get("c", onlyIf={"etagMatches": f'"{etag}"'}))
        for name, cond in [("match", {"etagMatches": etag}),
                           ("match_list", {"etagMatches": ["nope", etag]}), ("match_star", {"etagMatches": "*"}),
                           ("nomatch", {"etagMatches": "nope"}), ("dnm", {"etagDoesNotMatch": etag}),
                           ("dnm_other", {"etag_does_not_match": "nope"}),
                           ("after_past", {"uploadedAfter": up - hour}), ("after_future", {"uploadedAfter": up + hour}),
                           ("before_future", {"uploadedBefore": up + hour}),
                           ("before_past", {"uploadedBefore": up - hour}),
                           ("h_if_match", Headers({"if-match": f'"{etag}"'})),
                           ("h_if_none_match", Headers({"If-None-Match": f'"{etag}"'})),
                           ("h_ims_future", Headers({"if-modified-since": "Tue, 01 Jan 2999 00:00:00 GMT"})),
                           ("h_ius_past", Headers({"if-unmodified-since": "Tue, 01 Jan 2000 00:00:00 GMT"}))]:
            obj = await b.get("c", onlyIf=cond)
            out[name] = hasattr(obj, "body")
        out["put_blocked"] = await b.put("c", "two", onlyIf={"etagMatches": "nope"})
        out["still"] = await (await b.get("c")).text()
        ok = await b.put("c", "three", onlyIf={"etagMatches": etag})
        out["put_ok"] = ok is not None and await (await b.get("c")).text()
        out["create_only"] = [await b.put("new", "x", onlyIf=Headers({"if-none-match": "*"})) is not None,
                              await b.put("new", "y", onlyIf=Headers({"if-none-match": "*"})) is None]
        out["absent"] = await b.get("absent", onlyIf={"etagMatches": etag})
        return out

    async def s_listing(self, b):
        keys = ["a", "a/b", "a/c/d", "a/c/e", "b/x", "é", "z", "~", "ab"]
        for k in keys:
            await b.put(k, k, httpMetadata={"contentType": "text/x"}, customMetadata={"k": k})
        full = await b.list()
        delim = await b.list(delimiter="/")
        sub = await b.list(prefix="a/", delimiter="/")
        inc = await b.list(prefix="a/c", include=["httpMetadata", "customMetadata"])
        after = await b.list(startAfter="a/c/d")
        pages, cursor, rounds = [], None, 0
        while True:
            rounds += 1
            page = await b.list(limit=2, cursor=cursor, delimiter="/")
            pages.append([o.key for o in page.objects] + page.delimitedPrefixes)
            if not page.truncated:
                break
            cursor = page.cursor
        return {"full": [o.key for o in full.objects], "truncated": full.truncated, "cursor": full.cursor,
                "delim": [[o.key for o in delim.objects], delim.delimitedPrefixes],
                "sub": [[o.key for o in sub.objects], sub.delimited_prefixes],
                "inc": [[o.key, o.httpMetadata.get("contentType"), dict(o.customMetadata)] for o in inc.objects],
                "plain_meta": [dict(full.objects[0].httpMetadata), dict(full.objects[0].customMetadata)],
                "after": [o.key for o in after.objects], "pages": pages,
                "bad_limit": await error_of(b.list(limit=1001)),
                "bad_cursor": await error_of(b.list(cursor="garbage")),
                "bad_include": await error_of(b.list(include=["body"]))}

    async def s_multipart(self, b):
        up = await b.createMultipartUpload("mp", httpMetadata={"contentType": "video/mp4"},
                                           customMetadata={"m": "1"})
        p1 = bytes([1]) * (5 * MiB)
        p2 = bytes([2]) * (5 * MiB)
        p3 = b"tail"
        r = b.resumeMultipartUpload("mp", up.uploadId)
        parts = [await up.uploadPart(2, p2), await r.upload_part(1, p1), await up.uploadPart(3, p3)]
        obj = await up.complete(parts)
        got = await b.get("mp")
        data = await got.bytes()
        md5s = b"".join(hashlib.md5(p).digest() for p in (p1, p2, p3))
        small = await b.createMultipartUpload("small")
        sp = [await small.uploadPart(1, b"x" * 100), await small.uploadPart(2, b"y")]
        too_small = await error_of(small.complete(sp))
        small_state = await b.head("small")
        await small.uploadPart(1, b"x" * (5 * MiB))
        sp[0] = await small.uploadPart(1, b"z" * (5 * MiB))
        after_fix = await small.complete(sp)
        gone2 = await b.createMultipartUpload("w")
        await gone2.uploadPart(1, b"abc")
        gone = await b.createMultipartUpload("gone")
        await gone.uploadPart(1, b"abc")
        await gone.abort()
        return {"etag": obj.etag, "want_etag": hashlib.md5(md5s).hexdigest() + "-3", "size": obj.size,
                "ok": data == p1 + p2 + p3, "ct": got.httpMetadata["contentType"], "cm": dict(got.customMetadata),
                "parts": [p["partNumber"] for p in parts], "part_etag": parts[2].etag == hashlib.md5(p3).hexdigest(),
                "too_small": too_small, "small_state": small_state, "after_fix": after_fix.size,
                "after_abort": await error_of(gone.uploadPart(2, b"x")),
                "abort_twice": await error_of(gone.abort()),
                "unknown": await error_of(b.resumeMultipartUpload("mp", "nope").uploadPart(1, b"x")),
                "complete_done": await error_of(up.complete(parts)),
                "wrong_etag": await error_of(gone2.complete([{"partNumber": 1, "etag": "bad"}])),
                "part_zero": await error_of((await b.createMultipartUpload("z")).uploadPart(0, b"x"))}

    async def s_bad(self, b):
        long_key = "k" * 1025
        out = {"long": await error_of(b.put(long_key, "x")), "long_get": await error_of(b.get(long_key)),
               "ok_1024": (await b.put("k" * 1024, "x")).size,
               "long_mpu": await error_of(b.createMultipartUpload(long_key)),
               "empty_key": await error_of(b.put("", "x")),
               "many": await error_of(b.delete([f"k{i}" for i in range(1001)])),
               "digest": await error_of(b.put("d", "body", md5="0" * 32)),
               "digest_len": await error_of(b.put("d", "body", md5="abc")),
               "meta_big": await error_of(b.put("m", "x", customMetadata={"a": "x" * 3000})),
               "bad_value": await error_of(b.put("v", {"a": 1})),
               "bad_option": await error_of(b.put("v", "x", colour="red")),
               "bad_http": await error_of(b.put("v", "x", httpMetadata={"contentColour": "red"})),
               "bad_only_if": await error_of(b.get("v", onlyIf={"etagLike": "x"})),
               "bad_delete": await error_of(b.delete(5))}
        out["stored"] = sorted(o.key for o in (await b.list()).objects)
        return out
'''


@pytest.fixture
def app(dev: Any) -> Any:
    return dev({**WORKER_HELPERS, "wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")


def run(app: Any, scenario: str) -> dict[str, Any]:
    resp = app.get(f"/{scenario}", timeout=120)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_put_get_head_delete_and_metadata(app: Any) -> None:
    r = run(app, "basics")
    assert r["put"]["etag"] == "5d41402abc4b2a76b9719d911017c592"  # md5("hello")
    assert r["put"]["httpEtag"] == '"5d41402abc4b2a76b9719d911017c592"'
    assert r["put"]["checksums"] == {"md5": "5d41402abc4b2a76b9719d911017c592",
                                     "sha256": "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}
    assert r["get"]["httpMetadata"]["contentType"] == "text/plain"
    assert r["get"]["customMetadata"] == {"a": "1"}
    assert r["get"]["storageClass"] == "Standard" and r["get"]["size"] == 5
    assert r["head"]["has_body"] is False and r["get"]["has_body"] is True
    # range: on what get and head return (all of the object when no range was read, also for
    # a failed onlyIf), as on R2 (Miniflare mirrors it); not on what put returns
    assert r["get"]["range"] == r["head"]["range"] == {"offset": 0, "length": 5}
    assert r["not_modified"]["has_body"] is False and r["not_modified"]["range"] == {"offset": 0, "length": 5}
    assert "range" not in r["put"] and "range" not in r["copy"]
    assert r["text"] == "hello" and r["used"] is True
    assert r["headers"]["content-type"] == "text/plain"
    assert r["headers"]["cache-control"] == "max-age=60"
    assert r["headers"]["expires"] == "Wed, 02 Jan 2030 00:00:00 GMT"
    assert r["json"] == {"x": [1, 2]} and r["chunks"] == 1
    assert r["copy"]["etag"] == r["put"]["etag"]
    assert r["empty"] == [0, ""]
    assert r["versions"] == [True, "second"]
    assert r["gone"] == [None, None]


def test_large_bodies_stream_in_chunks(app: Any) -> None:
    r = run(app, "big")
    assert r["etag"] == r["md5"] == r["read_md5"]
    assert r["chunks"] == 12  # 1 MiB at a time, never the whole body in one message
    assert r["gen"][0] == 7 * (1024 * 1024 + 3) and r["gen"][1] == r["gen"][2]
    assert r["mid"] == r["want_mid"]


def test_ranges(app: Any) -> None:
    r = run(app, "ranges")
    assert r["off_len"] == ["234", {"offset": 2, "length": 3}]
    assert r["off"] == ["789", {"offset": 7, "length": 3}]
    assert r["suffix"] == ["6789", {"offset": 6, "length": 4}]
    assert r["clamp"] == ["89", {"offset": 8, "length": 2}]
    assert r["header"][0] == "123" and r["open"][0] == "6789" and r["hsuffix"][0] == "89"
    # an unsatisfiable Range header gives the whole object, whose range is all of it (as on R2)
    assert r["hbad"] == ["0123456789", {"offset": 0, "length": 10}]
    for name in ("past", "past_len", "zero"):
        assert r[name].startswith("ValueError: env.B.get(): The requested range is not satisfiable (10039)"), r[name]
    assert "offset 11" in r["past"] and "10 bytes" in r["past"]
    assert r["type"].startswith("TypeError") and "range.offset" in r["type"]


def test_conditionals(app: Any) -> None:
    r = run(app, "conditionals")
    assert r["match"] and r["match_list"] and r["match_star"]
    # workerd refuses a quoted etag in an onlyIf dict (the quoted form belongs in If-Match)
    assert r["match_quoted"].startswith("TypeError: env.B.get(): Conditional ETag should not be wrapped in quotes")
    assert not r["nomatch"] and not r["dnm"] and r["dnm_other"]
    assert r["after_past"] and not r["after_future"] and r["before_future"] and not r["before_past"]
    assert r["h_if_match"] and not r["h_if_none_match"] and not r["h_ims_future"] and not r["h_ius_past"]
    assert r["put_blocked"] is None and r["still"] == "one"
    assert r["put_ok"] == "three"
    assert r["create_only"] == [True, True]
    assert r["absent"] is None


def test_listing_with_delimiters_and_cursors(app: Any) -> None:
    r = run(app, "listing")
    assert r["full"] == ["a", "a/b", "a/c/d", "a/c/e", "ab", "b/x", "z", "~", "é"]  # UTF-8 byte order
    assert r["truncated"] is False and r["cursor"] is None
    assert r["delim"] == [["a", "ab", "z", "~", "é"], ["a/", "b/"]]
    assert r["sub"] == [["a/b"], ["a/c/"]]
    assert r["inc"] == [["a/c/d", "text/x", {"k": "a/c/d"}], ["a/c/e", "text/x", {"k": "a/c/e"}]]
    assert r["plain_meta"] == [{}, {}]  # without include, no metadata
    assert r["after"] == ["a/c/e", "ab", "b/x", "z", "~", "é"]
    assert r["pages"] == [["a"], ["a/"], ["ab"], ["b/"], ["z", "~"], ["é"]] or \
        sum(r["pages"], []) == ["a", "a/", "ab", "b/", "z", "~", "é"]
    assert all(len(p) <= 2 for p in r["pages"])
    assert "(10022)" in r["bad_limit"] and "1001" in r["bad_limit"]
    assert "cursor" in r["bad_cursor"] and r["bad_include"].startswith("TypeError")


def test_multipart(app: Any) -> None:
    r = run(app, "multipart")
    assert r["etag"] == r["want_etag"] and r["size"] == 10 * 1024 * 1024 + 4 and r["ok"]
    assert r["ct"] == "video/mp4" and r["cm"] == {"m": "1"}
    assert r["parts"] == [2, 1, 3] and r["part_etag"]
    assert "(10011)" in r["too_small"] and "part 1 is 100 bytes" in r["too_small"]
    assert r["small_state"] is None  # a refused complete stores nothing, the upload stays open
    assert r["after_fix"] == 5 * 1024 * 1024 + 1
    for name in ("after_abort", "abort_twice", "unknown", "complete_done"):
        assert "The specified multipart upload does not exist. (10024)" in r[name], (name, r[name])
    assert "'nope'" in r["unknown"]
    assert "(10025)" in r["wrong_etag"] and "part 1" in r["wrong_etag"]
    assert "part number 0" in r["part_zero"]


def test_bad_input_is_refused_and_stores_nothing(app: Any) -> None:
    r = run(app, "bad")
    assert r["long"].startswith("ValueError: env.B.put(): The specified object name is not valid. (10020)")
    assert "1025 bytes" in r["long"] and "at most 1024" in r["long"]
    assert "(10020)" in r["long_get"] and "(10020)" in r["long_mpu"] and "empty" in r["empty_key"]
    assert r["ok_1024"] == 1
    assert "1001 keys" in r["many"] and "at most 1000" in r["many"]
    assert "(10037)" in r["digest"] and "MD5" in r["digest"]
    assert r["digest_len"].startswith("TypeError") and "md5" in r["digest_len"]
    assert "(10012)" in r["meta_big"]
    assert r["bad_value"].startswith("TypeError") and "json.dumps" in r["bad_value"]
    assert "colour" in r["bad_option"] and "httpMetadata" in r["bad_option"]
    assert "contentColour" in r["bad_http"] and "etagLike" in r["bad_only_if"]
    assert r["bad_delete"].startswith("TypeError") and "list of keys" in r["bad_delete"]
    assert r["stored"] == ["k" * 1024]


def test_object_server_streams_headers_ranges_and_304(app: Any) -> None:
    body = bytes(range(256)) * 10_000  # 2.5 MiB: more than one chunk
    put = app.request("PUT", "/o/pics/a.bin", content=body, headers={"content-type": "application/x-test",
                                                                     "cache-control": "no-store"})
    assert put.status_code == 200, put.text
    etag = put.json()["httpEtag"]
    got = app.get("/o/pics/a.bin")
    assert got.status_code == 200 and got.content == body
    assert got.headers["content-type"] == "application/x-test" and got.headers["etag"] == etag
    assert got.headers["cache-control"] == "no-store"
    part = app.get("/o/pics/a.bin", headers={"range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    assert app.get("/o/pics/a.bin", headers={"if-none-match": etag}).status_code == 304
    assert app.get("/o/pics/missing").status_code == 404
    assert app.request("DELETE", "/o/pics/a.bin").text == "deleted"
    assert app.get("/o/pics/a.bin").status_code == 404
