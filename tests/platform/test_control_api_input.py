"""Bad input to the control API is a 4xx in the envelope, and a failing store a 5xx in the
envelope, never a bare text 500 (SPEC 5, issue 13: D4, D7, D8, D13, D14, N9)."""

from __future__ import annotations

import sqlite3
import textwrap
from pathlib import Path
from typing import Any

from http_app import ARGS, FILES

from edgelet.testing import Platform

API = "/cdn-cgi/edgelet/api"


def error_of(resp: Any) -> str:
    body = resp.json()
    assert body["success"] is False and body["result"] is None, body
    return body["errors"][0]["message"]


def test_max_body_size_applies_to_the_control_api(dev: Any) -> None:
    """D4: a 2 MB PUT to a 1 MiB limit is refused in the envelope and nothing is stored."""
    s = dev(FILES, *ARGS, "--max-body-size", str(1024 * 1024))
    big = s.request("PUT", f"{API}/kv/kv/values/big", content=b"x" * (2 * 1024 * 1024))
    assert big.status_code == 413, big.text
    assert "--max-body-size" in error_of(big)
    assert s.api("GET", "/kv/kv/values/big")["success"] is False
    # streamed without a Content-Length: refused as it crosses the limit
    chunks = (b"y" * 65536 for _ in range(32))
    streamed = s.request("PUT", f"{API}/kv/kv/values/streamed", content=chunks)
    assert streamed.status_code == 413 and s.api("GET", "/kv/kv/values/streamed")["success"] is False
    small = s.request("PUT", f"{API}/kv/kv/values/small", content=b"x" * 1000)
    assert small.status_code == 200 and s.api("GET", "/kv/kv/values/small")["result"] == "x" * 1000
    # Worker traffic keeps its plain-text 413
    assert s.post("/", content=b"x" * (2 * 1024 * 1024)).status_code == 413


def test_nan_and_infinity_are_refused_with_400(dev: Any) -> None:
    """D7: an instance whose params hold NaN could never be read back."""
    s = dev(FILES, *ARGS)
    for literal in ("NaN", "Infinity", "-Infinity"):
        r = s.post(f"{API}/workflows/flow/instances", content=f'{{"id": "n", "params": {{"x": {literal}}}}}')
        assert r.status_code == 400, r.text
        assert f"{literal} is not a JSON number" in error_of(r)
    assert s.api("GET", "/workflows/flow/instances/n")["success"] is False  # nothing created
    r = s.post(f"{API}/queues/q/messages", content='{"body": NaN}')
    assert r.status_code == 400 and "NaN" in error_of(r)
    r = s.request("PUT", f"{API}/kv/kv/values/k", params={"metadata": '{"a": Infinity}'}, content=b"v")
    assert r.status_code == 400 and "Infinity" in error_of(r)
    # an instance a Worker created with NaN params can still be read: null, as JSON.stringify gives
    assert s.get("/nan").text == "created"
    read = s.api("GET", "/workflows/flow/instances/nan")
    assert read["success"] is True, read
    assert read["result"]["params"] == {"x": None, "y": None}
    made = s.post(f"{API}/workflows/flow/instances", json={"id": "fine", "params": {"x": 1.5}})
    assert made.status_code == 201
    assert s.api("GET", "/workflows/flow/instances/fine")["success"] is True


def test_deeply_nested_json_is_400_not_409(dev: Any) -> None:
    """D8: 3,000 deep params and a 100,000 deep event payload."""
    s = dev(FILES, *ARGS)
    params = '{"id": "deep", "params": ' + "[" * 3000 + "]" * 3000 + "}"
    r = s.post(f"{API}/workflows/flow/instances", content=params)
    assert r.status_code == 400, r.text
    assert "levels deep" in error_of(r) and "maximum recursion" not in r.text
    assert s.post(f"{API}/workflows/flow/instances", json={"id": "w"}).status_code == 201
    event = "[" * 100_000 + "]" * 100_000
    r = s.post(f"{API}/workflows/flow/instances/w/events/go", content=event)
    assert r.status_code == 400, r.text
    assert "the event payload nests" in error_of(r)
    objects = '{"a":' * 200 + "1" + "}" * 200
    r = s.post(f"{API}/queues/q/messages", content='{"body": ' + objects + "}")
    assert r.status_code == 400 and "levels deep" in error_of(r)
    # a reasonable depth is fine
    ok = s.post(f"{API}/queues/q/messages", content='{"body": ' + "[" * 50 + "]" * 50 + "}")
    assert ok.status_code == 200, ok.text


def test_kv_list_with_an_invalid_cursor_is_400(dev: Any) -> None:
    """D14: `garbage` decodes as base64 but was never returned by a list."""
    s = dev(FILES, *ARGS)
    for key in ("a", "b", "c"):
        assert s.request("PUT", f"{API}/kv/kv/values/{key}", content=b"1").status_code == 200
    for cursor in ("garbage", "%ff%fe", "YQ", "AAAAAAAA"):
        r = s.get(f"{API}/kv/kv/keys", params={"cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        assert "is not one list() returned" in error_of(r)
    page = s.api("GET", "/kv/kv/keys?limit=2")
    assert [k["name"] for k in page["result"]] == ["a", "b"]
    rest = s.api("GET", f"/kv/kv/keys?cursor={page['result_info']['cursor']}")
    assert [k["name"] for k in rest["result"]] == ["c"]


def test_request_json_on_an_empty_body_raises(dev: Any) -> None:
    """N9: as on Cloudflare (json.loads of the text), not None."""
    s = dev(FILES, *ARGS)
    empty = s.post("/json", content=b"")
    assert empty.status_code == 400 and empty.text.startswith("JSONDecodeError: Expecting value"), empty.text
    assert s.post("/json", content=b'{"a": 1}').json() == {"json": {"a": 1}}


STORES = {
    "workers": [{"name": "web", "main": "web.py",
                 "kv_namespaces": [{"binding": "KV", "id": "kv"}],
                 "queues": {"producers": [{"binding": "Q", "queue": "q"}]},
                 "workflows": [{"name": "flow", "binding": "FLOW", "class_name": "Flow"}]}],
}


async def test_disk_full_during_a_control_api_write_answers_in_the_envelope(tmp_path: Path) -> None:
    """D13: the store cannot grow (PRAGMA max_page_count stands in for a full disk)."""
    (tmp_path / "web.py").write_text(textwrap.dedent(FILES["web.py"]).lstrip())
    async with Platform(STORES, base_dir=tmp_path, persist=tmp_path / "state") as p:
        assert (await p.fetch(f"{API}/kv/kv/values/before", method="PUT", body="small")).status == 200
        full: list[sqlite3.Connection] = []
        for name, conn in p.host._databases.items():
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            conn.execute(f"PRAGMA max_page_count = {pages}")
            full.append(conn)
            assert name
        r = await p.fetch(f"{API}/kv/kv/values/big", method="PUT", body="x" * 500_000)
        assert r.status == 507, (r.status, await r.text())
        body = await r.json()
        message = body["errors"][0]["message"]
        assert body["success"] is False and "database or disk is full" in message
        assert "Free space on the disk" in message and "PUT /cdn-cgi/edgelet/api/kv/kv/values/big" in message
        r = await p.fetch(f"{API}/workflows/flow/instances", method="POST",
                          json={"id": "w1", "params": {"blob": "y" * 500_000}})
        assert r.status == 507 and "database or disk is full" in (await r.json())["errors"][0]["message"]
        r = await p.fetch(f"{API}/queues/q/messages", method="POST", json={"body": "z" * 100_000})
        assert r.status == 507 and "database or disk is full" in (await r.json())["errors"][0]["message"]
        for conn in full:  # space again: the platform goes on, and nothing half-written shows
            conn.execute("PRAGMA max_page_count = 1073741823")
        assert (await p.fetch(f"{API}/kv/kv/values/big")).status == 404
        assert (await p.fetch(f"{API}/kv/kv/values/before")).status == 200
        assert (await p.fetch(f"{API}/kv/kv/values/after", method="PUT", body="ok")).status == 200
        assert (await p.fetch(f"{API}/workflows/flow/instances/w1")).status == 404
        assert (await p.fetch(f"{API}/workflows/flow/instances", method="POST", json={"id": "w2"})).status == 201
        assert (await p.fetch(f"{API}/queues/q/messages", method="POST", json={"body": 1})).status == 200
