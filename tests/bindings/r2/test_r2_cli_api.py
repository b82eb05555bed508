"""R2 from outside a Worker: wrangler's commands, the control API and ``p.r2`` in tests."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx

from edgelet.testing import Platform

CONFIG = """
    [[workers]]
    name = "app"
    main = "w.py"
    r2_buckets = [{ binding = "B", bucket_name = "files" }]

    [[workers]]
    name = "other"
    main = "w.py"
    r2_buckets = [{ binding = "SAME", bucket_name = "files" }, { binding = "LOGS", bucket_name = "logs" }]
"""

WORKER = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            b = getattr(self.env, "B", None) or self.env.SAME
            key = request.url.split("/", 3)[3]
            obj = await b.get(key)
            if obj is None:
                return Response("absent", status=404)
            return Response(obj.body, headers={"content-type": obj.httpMetadata.get("contentType", "")})
"""


def cli(cwd: Path, *args: str, port: int | None = None, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    extra = ["--port", str(port)] if port else []
    return subprocess.run([sys.executable, "-m", "edgelet.cli", "r2", *args, *extra], cwd=cwd, input=stdin,
                          capture_output=True, timeout=120, env={**os.environ, "NO_COLOR": "1"})


def test_cli_against_dev_then_state_folder(dev: Any, tmp_path: Path) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    r = cli(tmp_path, "object", "put", "files/dir/in.bin", "--file", str(src), "--content-type", "image/png",
            "--local", port=s.port)
    assert r.returncode == 0, r.stderr
    assert b"Uploaded 3145745 bytes to files/dir/in.bin" in r.stdout
    # the Worker sees it, through either binding of the same bucket
    got = s.get("/dir/in.bin")
    assert got.content == src.read_bytes() and got.headers["content-type"] == "image/png"
    assert s.get("/dir/in.bin", headers={"host": f"other.localhost:{s.port}"}).content == src.read_bytes()
    r = cli(tmp_path, "object", "put", "B/piped.txt", "--pipe", port=s.port, stdin=b"from stdin")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "object", "get", "files/piped.txt", "--pipe", port=s.port)
    assert r.returncode == 0 and r.stdout == b"from stdin"
    out = tmp_path / "out.bin"
    r = cli(tmp_path, "object", "get", "files/dir/in.bin", "--file", str(out), port=s.port)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()
    r = cli(tmp_path, "bucket", "list", port=s.port)
    assert r.returncode == 0 and b"files" in r.stdout and b"logs" in r.stdout and b"app.B" in r.stdout
    r = cli(tmp_path, "object", "get", "files/nope", "--pipe", port=s.port)
    assert r.returncode != 0 and b"does not exist" in r.stderr and b"nope" in r.stderr
    r = cli(tmp_path, "object", "put", "files/" + "k" * 1100, "--pipe", port=s.port, stdin=b"x")
    assert r.returncode != 0 and b"(10020)" in r.stderr
    r = cli(tmp_path, "object", "get", "no-slash", port=s.port)
    assert r.returncode != 0 and b"BUCKET/KEY" in r.stderr
    r = cli(tmp_path, "object", "delete", "files/piped.txt", port=s.port)
    assert r.returncode == 0 and s.get("/piped.txt").status_code == 404
    s.stop()

    # no dev running: the same commands read and write the state folder
    port = s.port
    r = cli(tmp_path, "object", "get", "files/dir/in.bin", "--pipe", port=port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == src.read_bytes()
    r = cli(tmp_path, "object", "put", "B/offline.txt", "--pipe", port=port, stdin=b"written offline")
    assert r.returncode == 0, r.stderr
    r = cli(tmp_path, "bucket", "list", "--json", port=port)
    assert r.returncode == 0 and b'"files"' in r.stdout
    s2 = dev(None, cwd=tmp_path)
    assert s2.get("/offline.txt").text == "written offline"


def test_control_api(dev: Any) -> None:
    s = dev({"wrangler_like.toml": CONFIG, "w.py": WORKER})
    base = f"{s.url}/cdn-cgi/edgelet/api/r2/buckets"
    for key in ("a/1", "a/2", "b", "c/3"):
        put = httpx.put(f"{base}/files/objects/{key}", content=key.encode() * 3, timeout=30,
                        headers={"content-type": "text/plain"})
        assert put.status_code == 200 and put.json()["success"], put.text
    meta = put.json()["result"]
    assert meta["key"] == "c/3" and meta["size"] == 9 and meta["httpMetadata"] == {"contentType": "text/plain"}
    buckets = s.api("GET", "/r2/buckets")["result"]
    assert [b["name"] for b in buckets] == ["files", "logs"]
    assert buckets[0]["object_count"] == 4 and {"worker": "other", "binding": "SAME"} in buckets[0]["bindings"]
    listing = s.api("GET", "/r2/buckets/files/objects", params={"delimiter": "/"})
    assert [o["key"] for o in listing["result"]] == ["b"]
    assert listing["result_info"]["delimited"] == ["a/", "c/"]
    page = s.api("GET", "/r2/buckets/B/objects", params={"prefix": "a/", "limit": "1"})
    assert [o["key"] for o in page["result"]] == ["a/1"] and page["result_info"]["is_truncated"]
    page2 = s.api("GET", "/r2/buckets/files/objects", params={"prefix": "a/", "cursor": page["result_info"]["cursor"]})
    assert [o["key"] for o in page2["result"]] == ["a/2"]
    got = httpx.get(f"{base}/files/objects/a/1", timeout=30)
    assert got.content == b"a/1a/1a/1" and got.headers["content-type"].startswith("text/plain")
    assert got.headers["etag"] == f'"{listing["result"][0]["etag"]}"' or got.headers["etag"].startswith('"')
    assert s.api("DELETE", "/r2/buckets/files/objects/a/1")["success"]
    missing = httpx.get(f"{base}/files/objects/a/1", timeout=30)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == 10007
    unknown = s.api("GET", "/r2/buckets/nope/objects")
    assert not unknown["success"] and "nope" in unknown["errors"][0]["message"]
    bad = s.api("GET", "/r2/buckets/files/objects", params={"limit": "5000"})
    assert not bad["success"] and bad["errors"][0]["code"] == 10400 and "5000" in bad["errors"][0]["message"]


async def test_p_r2_handle(tmp_path: Path) -> None:
    (tmp_path / "wrangler_like.toml").write_text(textwrap.dedent(CONFIG))
    (tmp_path / "w.py").write_text(textwrap.dedent(WORKER))
    async with Platform(str(tmp_path / "wrangler_like.toml")) as p:
        bucket = p.r2("B")
        obj = await bucket.put("seeded.txt", "from the test", httpMetadata={"contentType": "text/plain"})
        assert obj.key == "seeded.txt" and obj.size == 13
        resp = await p.fetch("/seeded.txt")
        assert await resp.text() == "from the test"
        same = p.r2("SAME", worker="other")
        assert await (await same.get("seeded.txt")).text() == "from the test"
        up = await bucket.createMultipartUpload("mp")
        part = await up.uploadPart(1, b"only part")
        done = await up.complete([part])
        assert done.etag.endswith("-1") and (await bucket.head("mp")).size == 9
        listing = await bucket.list()
        assert [o.key for o in listing.objects] == ["mp", "seeded.txt"]
        await bucket.delete(["mp", "seeded.txt"])
        assert (await bucket.list()).objects == []
        try:
            p.r2("NOPE")
        except LookupError as exc:
            assert "NOPE" in str(exc)
        else:
            raise AssertionError("p.r2 of an unknown binding must raise")
