"""KV: the Worker API over real HTTP, its limits, sharing, expiry, paging, the control API,
the CLI, and durability across kill -9 (KV example apps: tests/platform/test_example_apps.py)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from crash import kill_and_restart

from edgelet.bindings.kv import limits
from edgelet.bindings.kv.binding import AttrDict
from edgelet.bindings.kv.plugin import Plugin
from edgelet.bindings.kv.storage import KVStorage
from edgelet.config import load_config_dict

ROOT = Path(__file__).resolve().parents[3]
NOW = 1_800_000_000.0


class FakeClock:
    virtual = True

    def __init__(self, now: float = NOW) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


# -- storage and the host-side handle, no server -----------------------------------------------

def test_expired_keys_are_invisible_and_purged_lazily() -> None:
    clock = FakeClock()
    s = KVStorage(sqlite3.connect(":memory:", isolation_level=None), clock)
    s.put("ns", "short", b"1", "t", expiration_ttl=60)
    s.put("ns", "long", b"2", "t", expiration=int(NOW) + 3600)
    s.put("ns", "forever", b"3", "t")
    assert s.get("ns", "short", "t")[:2] == (b"1", int(NOW) + 60)
    clock.t += 59
    assert s.get("ns", "short", "t") is not None
    clock.t += 1  # exactly at the expiration second: gone
    assert s.get("ns", "short", "t") is None
    assert [r[0] for r in s.list("ns", None, None, None, "t")[0]] == ["forever", "long"]
    assert s.get_many("ns", ["short", "long"], "t")[0] is None
    assert s.key_counts() == {"ns": 2}
    clock.t += 3600
    assert [r[0] for r in s.list("ns", None, None, None, "t")[0]] == ["forever"]
    # purged, not just hidden
    assert s.conn.execute("SELECT count(*) FROM kv_values").fetchone()[0] == 1


def test_list_pages_in_utf8_byte_order_with_opaque_cursor() -> None:
    s = KVStorage(sqlite3.connect(":memory:", isolation_level=None), FakeClock())
    names = ["b", "a", "B", "é", "\uffff", "\U0001F600", "a/b", "a\x00", "Z", "ab", "aa"]
    for n in names:
        s.put("ns", n, n.encode(), "t")
    s.put("other", "a0", b"x", "t")
    seen, cursor = [], None
    while True:
        rows, complete, cursor = s.list("ns", None, 3, cursor, "t")
        seen += [r[0] for r in rows]
        assert len(rows) <= 3
        if complete:
            assert cursor is None
            break
        assert isinstance(cursor, str) and cursor
    assert seen == sorted(names, key=lambda n: n.encode())
    rows, complete, _ = s.list("ns", "a", None, None, "t")
    assert [r[0] for r in rows] == ["a", "a\x00", "a/b", "aa", "ab"] and complete
    with pytest.raises(ValueError, match="cursor"):
        s.list("ns", None, None, "%%%not-a-cursor", "t")


async def test_concurrent_writes_share_a_commit_and_are_committed_when_acked(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "kv.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    s = KVStorage(conn, FakeClock())
    calls = [s.call("ns", "t", "put", [f"k{i}", b"v", None, None, None]) for i in range(50)]
    calls.append(s.call("ns", "t", "put", ["", b"v", None, None, None]))
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[:50] == [None] * 50 and isinstance(results[50], ValueError)
    assert 1 <= statements.count("COMMIT") < 5
    reader = sqlite3.connect(tmp_path / "kv.sqlite3")  # what a crash would leave on disk
    assert reader.execute("SELECT count(*) FROM kv_values").fetchone()[0] == 50
    await s.call("ns", "t", "delete", ["k0"])
    assert reader.execute("SELECT count(*) FROM kv_values").fetchone()[0] == 49


@pytest.fixture
async def kv_plugin(tmp_path: Path) -> Any:
    """The real plug-in on a fake host: virtual clock, in-memory SQLite."""
    (tmp_path / "w.py").write_text("x = 1\n")
    config = load_config_dict({"workers": [
        {"name": "one", "main": "w.py", "kv_namespaces": [{"binding": "KV", "id": "shared"}]},
        {"name": "two", "main": "w.py", "kv_namespaces": [{"binding": "STORE", "id": "shared"},
                                                          {"binding": "OWN", "id": "private"}]},
    ]}, base_dir=tmp_path)

    class Host:
        def __init__(self) -> None:
            self.config = config
            self.clock = FakeClock()
            self.state_dir = None
            self.db = sqlite3.connect(":memory:", isolation_level=None)

        def database(self, name: str) -> sqlite3.Connection:
            return self.db

    plugin = Plugin()
    plugin.configure(config)
    await plugin.start(Host())  # type: ignore[arg-type]
    return plugin


async def test_host_handle_has_the_worker_api(kv_plugin: Plugin) -> None:
    kv = kv_plugin.test_handle("one", "KV")
    other = kv_plugin.test_handle("two", "STORE")
    own = kv_plugin.test_handle("two", "OWN")
    await kv.put("j", json.dumps({"a": [1, 2]}), {"metadata": {"m": 1}, "expirationTtl": 60})
    await kv.put("b", b"\x00\xff")
    assert await other.get("j", "json") == {"a": [1, 2]}          # same id: shared
    assert await own.get("j") is None                              # other id: isolated
    assert await kv.get("j", type="json") == {"a": [1, 2]}
    assert await kv.get("b", {"type": "bytes"}) == b"\x00\xff"
    view = await kv.get("b", "arrayBuffer")
    assert isinstance(view, memoryview) and bytes(view) == b"\x00\xff"
    stream = await kv.get("b", "stream")
    assert b"".join([c async for c in stream]) == b"\x00\xff"
    got = await kv.get_with_metadata("j", "json")
    assert got == {"value": {"a": [1, 2]}, "metadata": {"m": 1}, "cacheStatus": None}
    assert got.metadata == {"m": 1} and got.cacheStatus is None
    assert await kv.getWithMetadata("nope") == {"value": None, "metadata": None, "cacheStatus": None}
    assert await kv.get(["j", "nope"], "json") == {"j": {"a": [1, 2]}, "nope": None}
    page = await kv.list(prefix="", limit=1)
    assert page.keys == [{"name": "b"}] and page.list_complete is False and page.cursor
    page = await kv.list({"cursor": page.cursor})
    assert page["keys"] == [{"name": "j", "expiration": int(NOW) + 60, "metadata": {"m": 1}}]
    assert page.list_complete is True and page.cursor is None
    kv_plugin.host.clock.t += 61  # type: ignore[union-attr]
    assert await other.get("j") is None and (await kv.list()).keys == [{"name": "b"}]
    await kv.delete("b")
    assert await kv.get("b") is None
    with pytest.raises(ValueError, match="expirationTtl 30 .* minimum of 60"):
        await kv.put("k", "v", expiration_ttl=30)
    with pytest.raises(TypeError, match="unknown option 'expirationTTL'"):
        await kv.put("k", "v", expirationTTL=60)
    with pytest.raises(LookupError, match="no KV binding 'NOPE'"):
        kv_plugin.test_handle("one", "NOPE")
    assert [(n["id"], n["key_count"]) for n in kv_plugin.namespaces()] == [("private", 0), ("shared", 0)]


def test_attrdict_items_win_over_dict_methods() -> None:
    d = AttrDict(keys=[1], value="v")
    assert d.keys == [1] and d.value == "v" and d["keys"] == [1]
    assert json.loads(json.dumps(d)) == {"keys": [1], "value": "v"} and dict(d) == d
    with pytest.raises(AttributeError, match="no field 'cursor'"):
        d.cursor


# -- the Worker API over real HTTP ---------------------------------------------------------------

KV_WORKER = """
    import json, traceback
    from urllib.parse import urlsplit, parse_qs
    from workers import Response, WorkerEntrypoint

    async def gen():
        yield b"chunk1-"
        yield "chunk2"

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            url = urlsplit(request.url)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            kv = self.env.KV
            try:
                return await getattr(self, url.path.strip("/"))(kv, q, request)
            except Exception as exc:
                return Response.json({"error": type(exc).__name__, "message": str(exc)}, status=400)

        async def put(self, kv, q, request):
            await kv.put(q["key"], await request.text())
            return Response("ok")

        async def get(self, kv, q, request):
            value = await kv.get(q["key"])
            return Response("<none>" if value is None else value)

        async def methods(self, kv, q, request):
            out = {}
            await kv.put("text", "héllo")
            await kv.put("json", json.dumps({"n": 1}), {"metadata": {"tag": "j"}})
            await kv.put("bytes", b"\\x00\\x01\\xff", expirationTtl=3600)
            await kv.put("stream", gen())
            first = await kv.get("text", "stream")
            await kv.put("copied", first)
            await kv.put("opts", "o", None)
            await kv.put("exp", "e", expiration=int(q["now"]) + 3600, metadata=[1, "two"])
            out["text"] = await kv.get("text")
            out["text_type"] = await kv.get("text", type="text")
            out["json"] = await kv.get("json", "json")
            out["json_opts"] = await kv.get("json", {"type": "json", "cacheTtl": 60})
            out["bytes"] = list(await kv.get("bytes", "bytes"))
            ab = await kv.get("bytes", "arrayBuffer")
            out["arrayBuffer"] = [type(ab).__name__, list(ab)]
            st = await kv.get("stream", "stream")
            out["stream"] = [type(st).__name__, b"".join([c async for c in st]).decode()]
            out["response_from_stream"] = await Response(await kv.get("copied", "stream")).text()
            out["missing"] = await kv.get("missing")
            out["bulk"] = await kv.get(["text", "json", "missing"])
            out["bulk_json"] = await kv.get(["json"], type="json")
            gwm = await kv.getWithMetadata("json", "json")
            out["gwm"] = gwm
            out["gwm_attr"] = [gwm.value, gwm.metadata, gwm.cacheStatus]
            out["gwm_snake"] = await kv.get_with_metadata("text")
            out["gwm_missing"] = await kv.getWithMetadata("missing")
            out["gwm_bulk"] = await kv.get_with_metadata(["json", "missing"], {"type": "json"})
            listed = await kv.list()
            out["list"] = listed
            out["list_attr"] = [[k.name for k in listed.keys], listed.list_complete, listed.cursor]
            out["list_prefix"] = [k["name"] for k in (await kv.list(prefix="js"))["keys"]]
            out["list_none"] = (await kv.list(None))["list_complete"]
            await kv.delete("text")
            await kv.delete("never-there")
            out["deleted"] = await kv.get("text")
            return Response.json(out)

        async def violations(self, kv, q, request):
            cases = {
                "empty_key": lambda: kv.put("", "v"),
                "dot": lambda: kv.put(".", "v"),
                "dotdot": lambda: kv.put("..", "v"),
                "long_key": lambda: kv.put("k" * 513, "v"),
                "long_key_get": lambda: kv.get("é" * 257),
                "big_value": lambda: kv.put("big", b"x" * (25 * 1024 * 1024 + 1)),
                "big_metadata": lambda: kv.put("meta", "v", metadata={"m": "x" * 1020}),
                "ttl_59": lambda: kv.put("ttl", "v", expirationTtl=59),
                "ttl_dict": lambda: kv.put("ttl", "v", {"expirationTtl": 10}),
                "exp_past": lambda: kv.put("exp", "v", expiration=int(q["now"]) - 10),
                "exp_soon": lambda: kv.put("exp", "v", {"expiration": int(q["now"]) + 30}),
                "bad_type": lambda: kv.get("some", "xml"),
                "bad_type_kw": lambda: kv.get("some", type="blob"),
                "bulk_101": lambda: kv.get([f"k{i}" for i in range(101)]),
                "bulk_bytes": lambda: kv.get(["a", "b"], "arrayBuffer"),
                "dict_value": lambda: kv.put("dict", {"a": 1}),
                "none_value": lambda: kv.put("none", None),
                "int_key": lambda: kv.put(5, "v"),
                "unknown_option": lambda: kv.put("opt", "v", expirationTTL=60),
                "limit_0": lambda: kv.list(limit=0),
                "limit_1001": lambda: kv.list({"limit": 1001}),
                "bad_metadata": lambda: kv.put("m", "v", metadata={1, 2}),
            }
            out = {}
            for name, call in cases.items():
                try:
                    await call()
                    out[name] = None
                except Exception as exc:
                    out[name] = [type(exc).__name__, str(exc)]
            out["stored"] = [k["name"] for k in (await kv.list())["keys"]]
            await kv.put("ok", "v", metadata={"m": "x" * 1000}, expirationTtl=60)
            out["stored_after_ok"] = [k["name"] for k in (await kv.list())["keys"]]
            return Response.json(out)

        async def page(self, kv, q, request):
            names = json.loads(await request.text())
            for n in names:
                await kv.put(n, "v")
            seen, cursor, pages = [], None, 0
            while True:
                r = await kv.list(limit=int(q["limit"]), cursor=cursor, prefix=q.get("prefix"))
                seen += [k["name"] for k in r["keys"]]
                pages += 1
                if r["list_complete"]:
                    break
                cursor = r["cursor"]
            return Response.json({"seen": seen, "pages": pages})
"""

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "one"
        main = "kvw.py"
        kv_namespaces = [{ binding = "KV", id = "shared-ns" }]

        [[workers]]
        name = "two"
        main = "kvw.py"
        kv_namespaces = [{ binding = "KV", id = "shared-ns" }]

        [[workers]]
        name = "three"
        main = "kvw.py"
        kv_namespaces = [{ binding = "KV", id = "private-ns" }]
    """,
    "kvw.py": KV_WORKER,
}


def _now() -> int:
    import time
    return int(time.time())


def test_every_method_and_alias_from_a_worker(dev: Any) -> None:
    s = dev(APP)
    r = s.get(f"/methods?now={_now()}")
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["text"] == out["text_type"] == "héllo"
    assert out["json"] == out["json_opts"] == {"n": 1}
    assert out["bytes"] == [0, 1, 255]
    assert out["arrayBuffer"] == ["memoryview", [0, 1, 255]]
    assert out["stream"] == ["KVStream", "chunk1-chunk2"]
    assert out["response_from_stream"] == "héllo"
    assert out["missing"] is None
    assert out["bulk"] == {"text": "héllo", "json": '{"n": 1}', "missing": None}
    assert out["bulk_json"] == {"json": {"n": 1}}
    assert out["gwm"] == {"value": {"n": 1}, "metadata": {"tag": "j"}, "cacheStatus": None}
    assert out["gwm_attr"] == [{"n": 1}, {"tag": "j"}, None]
    assert out["gwm_snake"] == {"value": "héllo", "metadata": None, "cacheStatus": None}
    assert out["gwm_missing"] == {"value": None, "metadata": None, "cacheStatus": None}
    assert out["gwm_bulk"] == {"json": {"value": {"n": 1}, "metadata": {"tag": "j"}}, "missing": None}
    keys = {k["name"]: k for k in out["list"]["keys"]}
    assert list(keys) == ["bytes", "copied", "exp", "json", "opts", "stream", "text"]
    assert keys["text"] == {"name": "text"}  # no expiration or metadata when absent
    assert keys["json"] == {"name": "json", "metadata": {"tag": "j"}}
    assert set(keys["bytes"]) == {"name", "expiration"} and keys["bytes"]["expiration"] > _now() + 3500
    assert keys["exp"]["metadata"] == [1, "two"]
    assert out["list"]["list_complete"] is True and out["list"]["cacheStatus"] is None
    assert out["list_attr"] == [list(keys), True, None]
    assert out["list_prefix"] == ["json"] and out["list_none"] is True
    assert out["deleted"] is None


def test_limits_raise_clear_errors_and_store_nothing(dev: Any) -> None:
    s = dev(APP)
    out = s.get(f"/violations?now={_now()}").json()
    expect = {
        "empty_key": ("ValueError", ["must not be empty"]),
        "dot": ("ValueError", ["'.'", "not allowed"]),
        "dotdot": ("ValueError", ["'..'", "not allowed"]),
        "long_key": ("ValueError", ["kkkk", "513 bytes", "512 bytes"]),
        "long_key_get": ("ValueError", ["514 bytes", "512 bytes"]),
        "big_value": ("ValueError", ["'big'", "26214401 bytes", "26214400 bytes"]),
        "big_metadata": ("ValueError", ["'meta'", "1028 bytes", "1024 bytes"]),
        "ttl_59": ("ValueError", ["'ttl'", "59", "minimum of 60"]),
        "ttl_dict": ("ValueError", ["'ttl'", "10", "minimum of 60"]),
        "exp_past": ("ValueError", ["'exp'", "60 seconds in the future"]),
        "exp_soon": ("ValueError", ["'exp'", "60 seconds in the future"]),
        "bad_type": ("ValueError", ["'xml'", "'some'", "'arrayBuffer'"]),
        "bad_type_kw": ("ValueError", ["'blob'", "'stream'"]),
        "bulk_101": ("ValueError", ["101 keys", "limit is 100"]),
        "bulk_bytes": ("ValueError", ["'arrayBuffer'", "text or json"]),
        "dict_value": ("TypeError", ["'dict'", "json.dumps"]),
        "none_value": ("TypeError", ["'none'", "NoneType"]),
        "int_key": ("TypeError", ["key must be a str"]),
        "unknown_option": ("TypeError", ["'expirationTTL'", "expirationTtl"]),
        "limit_0": ("ValueError", ["limit 0", "1 to 1000"]),
        "limit_1001": ("ValueError", ["limit 1001", "1 to 1000"]),
        "bad_metadata": ("TypeError", ["'m'", "JSON-serializable"]),
    }
    for name, (kind, words) in expect.items():
        assert out[name] is not None, f"{name} was accepted"
        assert out[name][0] == kind, (name, out[name])
        for word in words:
            assert word in out[name][1], (name, word, out[name][1])
        assert "env.KV." in out[name][1], out[name]
    assert out["stored"] == []
    assert out["stored_after_ok"] == ["ok"]


def test_same_id_is_shared_and_other_ids_are_isolated(dev: Any) -> None:
    s = dev(APP)
    host = {f"{n}": {"host": f"{n}.localhost:{s.port}"} for n in ("one", "two", "three")}
    assert s.post("/put?key=greeting", content="from one", headers=host["one"]).text == "ok"
    assert s.get("/get?key=greeting", headers=host["two"]).text == "from one"
    assert s.get("/get?key=greeting", headers=host["three"]).text == "<none>"
    assert s.post("/put?key=greeting", content="from three", headers=host["three"]).text == "ok"
    assert s.get("/get?key=greeting", headers=host["one"]).text == "from one"
    spaces = {n["id"]: n for n in s.api("GET", "/kv/namespaces")["result"]}
    assert spaces["shared-ns"]["key_count"] == 1 and spaces["private-ns"]["key_count"] == 1
    assert {b["worker"] for b in spaces["shared-ns"]["bindings"]} == {"one", "two"}


def test_list_pages_with_cursor_in_byte_order(dev: Any) -> None:
    s = dev(APP)
    names = [f"k{i:03d}" for i in range(25)] + ["é", "Z", "\U0001F600", "\uffff", "a b"]
    out = s.post("/page?limit=7", content=json.dumps(names)).json()
    assert out["seen"] == sorted(names, key=lambda n: n.encode()) and out["pages"] == 5
    out = s.post("/page?limit=10&prefix=k01", content="[]").json()
    assert out["seen"] == [f"k01{i}" for i in range(10)] and out["pages"] == 1


# -- control API, CLI, durability ---------------------------------------------------------------

def test_control_api_values_keys_and_namespaces(dev: Any) -> None:
    s = dev(APP)
    base = "/cdn-cgi/edgelet/api/kv"
    r = s.request("PUT", f"{base}/KV/values/dir%2Fa%20b", content=b"hello",
                  params={"metadata": '{"by": "api"}', "expiration_ttl": "600"})
    assert r.json()["success"] is True, r.text
    # namespace by id, key with a slash and a space
    got = s.api("GET", "/kv/shared-ns/values/dir%2Fa%20b")
    assert got["result"] == "hello" and got["result_info"]["metadata"] == {"by": "api"}
    assert got["result_info"]["expiration"] >= _now() + 590
    assert s.get("/get?key=dir/a b").text == "hello"  # the Worker sees it
    s.request("PUT", f"{base}/shared-ns/values/bin", content=b"\xff\x00")
    got = s.api("GET", "/kv/KV/values/bin")
    assert got["result_info"]["encoding"] == "base64" and got["result"] == "/wA="
    for i in range(5):
        s.request("PUT", f"{base}/KV/values/p{i}", content=b"x")
    page = s.api("GET", "/kv/KV/keys?prefix=p&limit=2")
    assert [k["name"] for k in page["result"]] == ["p0", "p1"]
    assert page["result_info"]["count"] == 2 and page["result_info"]["cursor"]
    rest = s.api("GET", f"/kv/KV/keys?prefix=p&cursor={page['result_info']['cursor']}")
    assert [k["name"] for k in rest["result"]] == ["p2", "p3", "p4"]
    assert rest["result_info"]["cursor"] == ""
    everything = s.api("GET", "/kv/KV/keys")["result"]
    assert everything[0] == {"name": "bin"}
    assert everything[1]["metadata"] == {"by": "api"} and "expiration" in everything[1]
    assert s.api("DELETE", "/kv/KV/values/p0")["success"] is True
    missing = s.api("GET", "/kv/KV/values/p0")
    assert missing["success"] is False and missing["errors"][0]["code"] == 10009
    assert "'p0'" in missing["errors"][0]["message"]
    bad = s.request("PUT", f"{base}/KV/values/t", content=b"v", params={"expiration_ttl": "5"})
    assert bad.status_code == 400 and "minimum of 60" in bad.json()["errors"][0]["message"]
    bad = s.request("PUT", f"{base}/KV/values/t", content=b"v", params={"metadata": "{nope"})
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["errors"][0]["message"]
    big = s.request("PUT", f"{base}/KV/values/big", content=b"x" * (25 * 1024 * 1024 + 1))
    assert big.status_code == 400 and "26214400" in big.json()["errors"][0]["message"]
    dots = s.request("PUT", f"{base}/KV/values/%2E%2E", content=b"v")
    assert dots.status_code == 400 and "not allowed" in dots.json()["errors"][0]["message"]
    unknown = s.api("GET", "/kv/nope/keys")
    assert unknown["success"] is False and "shared-ns" in unknown["errors"][0]["message"]
    assert s.api("GET", "/kv/KV/values/t")["success"] is False  # nothing stored
    spaces = s.api("GET", "/kv/namespaces")["result"]
    assert [(n["id"], n["key_count"]) for n in spaces] == [("private-ns", 0), ("shared-ns", 6)]


def _cli(cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "edgelet.cli", "kv", *args], cwd=cwd,
                          capture_output=True, timeout=60, input=stdin)


def test_cli_against_dev_then_state_folder(dev: Any) -> None:
    s = dev(APP)
    port = ["--port", str(s.port)]
    r = _cli(s.cwd, "key", "put", "cli-key", "cli value", "--binding", "KV", "--ttl", "600",
             "--metadata", '{"from": "cli"}', *port)
    assert r.returncode == 0, r.stderr
    assert s.get("/get?key=cli-key").text == "cli value"
    assert _cli(s.cwd, "key", "get", "cli-key", "--binding", "KV", *port).stdout == b"cli value"
    s.post("/put?key=other", content="o")
    r = _cli(s.cwd, "key", "list", "--binding", "KV", "--json", *port)
    listed = json.loads(r.stdout)
    assert [k["name"] for k in listed] == ["cli-key", "other"]
    assert listed[0]["metadata"] == {"from": "cli"} and listed[0]["expiration"] > _now()
    r = _cli(s.cwd, "key", "list", "--binding", "KV", "--prefix", "cli", *port)
    assert b"cli-key" in r.stdout and b"other" not in r.stdout and b"NAME" in r.stdout
    bad = _cli(s.cwd, "key", "put", "k", "v", "--binding", "KV", "--ttl", "5", *port)
    assert bad.returncode != 0 and b"minimum of 60" in bad.stderr
    assert _cli(s.cwd, "key", "delete", "other", "--binding", "KV", *port).returncode == 0
    assert s.get("/get?key=other").text == "<none>"
    missing = _cli(s.cwd, "key", "get", "other", "--binding", "KV", *port)
    assert missing.returncode == 1 and b"not found" in missing.stderr
    r = _cli(s.cwd, "namespace", "list", *port)
    assert b"shared-ns" in r.stdout and b"one.KV" in r.stdout
    s.stop()
    # no dev answers now: the CLI reads and writes the state folder itself
    r = _cli(s.cwd, "key", "get", "cli-key", "--binding", "KV", *port)
    assert r.returncode == 0 and r.stdout == b"cli value", r.stderr
    assert _cli(s.cwd, "key", "put", "offline", "v2", "--binding", "KV", *port).returncode == 0
    r = _cli(s.cwd, "key", "list", "--binding", "KV", "--json", *port)
    assert [k["name"] for k in json.loads(r.stdout)] == ["cli-key", "offline"]
    r = _cli(s.cwd, "key", "list", "--namespace-id", "private-ns", "--json", *port)
    assert json.loads(r.stdout) == []
    s2 = dev(None, cwd=s.cwd)
    assert s2.get("/get?key=offline").text == "v2"


def test_acknowledged_put_survives_kill_9(dev: Any) -> None:
    s = dev(APP)
    for i in range(20):
        assert s.post(f"/put?key=d{i}", content=f"value {i}").text == "ok"
    s2 = kill_and_restart(dev, s)
    assert [s2.get(f"/get?key=d{i}").text for i in range(20)] == [f"value {i}" for i in range(20)]


def test_in_memory_state_is_not_kept(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    s.post("/put?key=m", content="mem")
    assert s.get("/get?key=m").text == "mem"
    s.stop()
    assert not (s.cwd / ".edgelet" / "state" / "kv.sqlite3").exists()


def test_demo_notes_worker(dev: Any) -> None:
    s = dev({"wrangler_like.toml": """
        name = "notes"
        main = "notes.py"
        kv_namespaces = [{ binding = "NOTES", id = "notes" }]
    """, "notes.py": (ROOT / "workers" / "notes.py").read_text()})
    assert s.request("PUT", "/notes/todo", content="buy milk").status_code == 201
    s.request("PUT", "/notes/a%2Fb", content="x")
    assert s.get("/notes/todo").text == "buy milk"
    assert s.get("/notes").json() == [{"name": "a/b", "size": 1}, {"name": "todo", "size": 8}]
    assert s.request("DELETE", "/notes/todo").status_code == 200
    assert s.get("/notes/todo").status_code == 404
    r = s.request("PUT", "/notes/" + "n" * 600, content="x")
    assert r.status_code == 400 and "512 bytes" in r.text


def test_limit_constants_match_cloudflare() -> None:
    assert (limits.MAX_KEY_BYTES, limits.MAX_VALUE_BYTES, limits.MAX_METADATA_BYTES,
            limits.MIN_EXPIRATION_TTL, limits.MAX_LIST_LIMIT, limits.MAX_BULK_KEYS) == \
        (512, 25 * 1024 * 1024, 1024, 60, 1000, 100)
