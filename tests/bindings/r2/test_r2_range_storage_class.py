"""R2 ranges at and past the end of an object, and storage classes R2 does not have, through
a real `edgelet dev` Worker.

What R2 does (checked against Miniflare's R2 gateway, workers-sdk
packages/miniflare/src/workers/r2/validator.worker.ts and its tests, and against reports of
production behaviour): an ``{offset, length}`` / ``{suffix}`` range that starts at or past
the end, or asks for no bytes, throws ``get: The requested range is not satisfiable (10039)``;
a suffix longer than the object gives the whole object; a ``Range`` *header* that cannot be
satisfied is ignored and the whole object comes back (the Worker answers 200, not 206).
R2 has two storage classes, ``Standard`` and ``InfrequentAccess`` (r2/buckets/storage-classes).
"""

from __future__ import annotations

from typing import Any

from r2_app import CONFIG

WORKER = r'''
from workers import Headers, Response, WorkerEntrypoint


async def outcome(coro):
    try:
        obj = await coro
    except ValueError as exc:  # R2Error raised in the Worker, or rebuilt from the host's answer
        return f"ValueError: {exc}"
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    if obj is None:
        return None
    if hasattr(obj, "body"):
        return {"text": await obj.text(), "range": dict(obj.range)}
    return {"storageClass": obj.storageClass}


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        b = self.env.B
        path = request.url.split("/", 3)[3]
        if path.startswith("o/"):  # serves an object as a Worker passing Range through would
            obj = await b.get(path[2:], range=request.headers)
            status = 206 if obj.range["length"] < obj.size else 200
            return Response(obj.body, status=status)
        await b.put("ten", "0123456789")
        await b.put("empty", "")
        out = {}
        for name, rng in [("past", {"offset": 11}), ("at_end", {"offset": 10}),
                          ("at_end_len", {"offset": 10, "length": 2}), ("len0", {"offset": 2, "length": 0}),
                          ("len0_only", {"length": 0}), ("suffix0", {"suffix": 0}),
                          ("suffix_long", {"suffix": 50}), ("len_long", {"offset": 8, "length": 50}),
                          ("last_byte", {"offset": 9}), ("header_past", Headers({"range": "bytes=50-60"}))]:
            out[name] = await outcome(b.get("ten", range=rng))
        out["empty_offset"] = await outcome(b.get("empty", range={"offset": 0}))
        out["empty_suffix"] = await outcome(b.get("empty", range={"suffix": 3}))
        out["empty_whole"] = await outcome(b.get("empty"))
        # storage classes
        out["put_ia"] = await outcome(b.put("ia", "x", storageClass="InfrequentAccess"))
        out["put_std"] = await outcome(b.put("std", "x", storage_class="Standard"))
        out["put_default"] = await outcome(b.put("dflt", "x"))
        out["put_bad"] = await outcome(b.put("bad", "x", storageClass="Glacier"))
        out["put_bad_case"] = await outcome(b.put("bad", "x", storageClass="standard"))
        out["put_bad_type"] = await outcome(b.put("bad", "x", storageClass=1))
        out["bad_head"] = await b.head("bad")
        out["mpu_bad"] = await outcome(b.createMultipartUpload("mbad", storageClass="COLD"))
        up = await b.createMultipartUpload("mia", storageClass="InfrequentAccess")
        part = await up.uploadPart(1, "tail")
        out["mpu_ia"] = (await up.complete([part])).storageClass
        out["listed"] = {o.key: o.storageClass for o in (await b.list()).objects}
        return Response.json(out)
'''

NOT_SATISFIABLE = "ValueError: env.B.get(): The requested range is not satisfiable (10039): "


def test_ranges_at_or_past_the_end_throw_as_on_r2_and_a_header_is_ignored(dev: Any) -> None:
    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = app.get("/all", timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    for name in ("past", "at_end", "at_end_len", "len0", "len0_only", "suffix0", "empty_offset", "empty_suffix"):
        assert isinstance(out[name], str) and out[name].startswith(NOT_SATISFIABLE), (name, out[name])
    # the message names the offset asked for and the object's size, never a made-up length
    assert "range.offset 11 starts at or past the end of 'ten', which is 10 bytes" in out["past"]
    assert "length -1" not in out["past"]
    assert "range.offset 10 (length 2)" in out["at_end_len"]
    assert "range.length is 0" in out["len0"] and "range.length is 0" in out["len0_only"]
    assert "range.suffix is 0" in out["suffix0"]
    assert "'empty' is empty (0 bytes)" in out["empty_offset"] and "get it without a range" in out["empty_offset"]
    assert out["empty_whole"] == {"text": "", "range": {"offset": 0, "length": 0}}
    # clamped, as on R2: a suffix or a length reaching past the end stops at the end
    assert out["suffix_long"] == {"text": "0123456789", "range": {"offset": 0, "length": 10}}
    assert out["len_long"] == {"text": "89", "range": {"offset": 8, "length": 2}}
    assert out["last_byte"] == {"text": "9", "range": {"offset": 9, "length": 1}}
    # an unsatisfiable Range header is ignored: the whole object, its range all of it
    assert out["header_past"] == {"text": "0123456789", "range": {"offset": 0, "length": 10}}

    whole = app.get("/o/ten", headers={"range": "bytes=50-60"})
    assert whole.status_code == 200 and whole.content == b"0123456789"
    part = app.get("/o/ten", headers={"range": "bytes=8-60"})
    assert part.status_code == 206 and part.content == b"89"


def test_only_r2_storage_classes_are_accepted(dev: Any) -> None:
    app = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER}, "--in-memory")
    r = app.get("/all", timeout=120)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["put_ia"] == {"storageClass": "InfrequentAccess"}
    assert out["put_std"] == out["put_default"] == {"storageClass": "Standard"}
    assert out["put_bad"] == ("ValueError: env.B.put(): Invalid argument. (10029): storageClass 'Glacier' is "
                              "not an R2 storage class; use 'Standard' or 'InfrequentAccess' (names are "
                              "case-sensitive); nothing was stored")
    assert "storageClass 'standard' is not an R2 storage class" in out["put_bad_case"]
    assert out["put_bad_type"].startswith("TypeError: env.B.put(): storageClass must be a str")
    assert out["bad_head"] is None  # nothing stored under the refused puts
    assert out["mpu_bad"].startswith("ValueError: env.B.createMultipartUpload(): Invalid argument. (10029): "
                                     "storageClass 'COLD' is not an R2 storage class")
    assert out["mpu_ia"] == "InfrequentAccess"
    assert out["listed"] == {"dflt": "Standard", "empty": "Standard", "ia": "InfrequentAccess",
                             "mia": "InfrequentAccess", "std": "Standard", "ten": "Standard"}


def test_the_host_refuses_a_storage_class_that_skipped_the_worker_side_check(tmp_path: Any) -> None:
    """The wire is not trusted: a put that reaches the service with a made-up class stores nothing."""
    import asyncio

    import pytest

    from edgelet.bindings.r2.errors import R2Error
    from edgelet.bindings.r2.service import R2Service
    from edgelet.bindings.r2.storage import R2Storage
    from edgelet.clock import Clock
    from edgelet.state import open_database

    async def main() -> None:
        conn = open_database(tmp_path / "r2.sqlite3")
        from edgelet.bindings.r2 import schema
        schema.migrate(conn)
        service = R2Service(R2Storage(conn, tmp_path / "r2", Clock()))
        with pytest.raises(R2Error, match="storageClass 'Glacier' is not an R2 storage class"):
            await service.call("files", "env.B", "put", ["k", b"x", {"storageClass": "Glacier"}])
        with pytest.raises(R2Error, match="storageClass 'Glacier'"):
            await service.call("files", "env.B", "mpu_create", ["k", {"storageClass": "Glacier"}])
        assert await service.call("files", "env.B", "head", ["k"]) is None
        assert conn.execute("SELECT count(*) FROM r2_uploads").fetchone()[0] == 0

    asyncio.run(main())
