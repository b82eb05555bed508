"""What programs written for Cloudflare's Python Workers reach for, through a real `edgelet dev`:
``request.method`` as ``http.HTTPMethod``, ``request.body.getReader()``, ``form_data()``,
Blob/File/FormData, ``from workers import env``, the ``js`` and ``pyodide`` names, and
Durable Object SQL rows with attribute access."""

from __future__ import annotations

import hashlib
import uuid

import pytest

TOML = """
    [[workers]]
    name = "compat"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    vars = { NAME = "compat-worker" }
    durable_objects.bindings = [{ name = "ROWS", class_name = "Rows" }]
"""

WORKER = '''
    import json
    from http import HTTPMethod

    import js
    from js import JSON, URL, Object, Uint8Array, crypto
    from pyodide.ffi import create_proxy, to_js
    from pyodide.http import pyfetch
    from workers import (Blob, DurableObject, File, FormData, Response, WorkerEntrypoint,
                         import_from_javascript, patch_env, python_from_rpc)
    import workers

    class Rows(DurableObject):
        async def fetch(self, request):
            sql = self.ctx.storage.sql
            sql.exec("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
            sql.exec("INSERT OR REPLACE INTO kv VALUES (?, ?)", "a", "apple")
            row = sql.exec("SELECT value FROM kv WHERE key = ?", "a").one()
            rows = sql.exec("SELECT key, value FROM kv").toArray()
            return Response.json({"one": row.value, "first_key": rows[0].key, "item": row["value"]})

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = URL.new(request.url).pathname
            if path == "/method":
                m = request.method
                return Response.json({"value": m.value, "is_enum": isinstance(m, HTTPMethod),
                                      "eq": m == "PUT"})
            if path == "/reader":
                reader = request.body.getReader()
                size, parts = 0, 0
                while True:
                    chunk = await reader.read()
                    if chunk.done:
                        break
                    size += len(chunk.value.to_bytes())
                    parts += 1
                return Response.json({"size": size, "parts": parts, "none": request.body is None})
            if path == "/no-body":
                return Response.json({"none": request.body is None})
            if path == "/upload":
                form = await request.form_data()
                upload = form["file"]
                return Response.json({"name": form["name"], "filename": upload.name,
                                      "text": await upload.text(), "type": upload.content_type})
            if path == "/make-form":
                form = FormData({"a": "1"})
                form.append("doc", Blob([b"hello ", "blob"], content_type="text/plain"), "doc.txt")
                return Response(form)
            if path == "/js":
                data = to_js(b"abc")
                digest = await crypto.subtle.digest("SHA-256", to_js(b"edgelet"))
                obj = Object.fromEntries([["k", 1], ["j", 2]])
                parsed = JSON.parse('{"nested": {"x": 5}}')
                arr = Uint8Array.new(3)
                return Response.json({
                    "buffer_len": data.buffer.byteLength, "to_bytes": data.to_bytes().decode(),
                    "digest": bytes(digest).hex(), "uuid": crypto.randomUUID(),
                    "keys": Object.keys(obj), "entries": Object.entries(obj), "x": parsed.nested.x,
                    "arr": list(arr), "proxy": create_proxy(7), "host": URL.new(request.url).hostname,
                    "values": to_js({"p": 1}).object_values(),
                    "js_response": js.Response.new("x", status=202).status,
                })
            if path == "/env":
                module = import_from_javascript("cloudflare:workers")
                with patch_env(EXTRA="patched"):
                    patched = workers.env.EXTRA
                return Response.json({"env": workers.env.NAME, "module_env": module.env.NAME,
                                      "patched": patched, "after": "EXTRA" in workers.env,
                                      "rpc": python_from_rpc({"a": {"b": 1}}).a.b})
            if path == "/pyfetch":
                origin = URL.new(request.url).origin
                resp = await pyfetch(origin + "/method", method="POST")
                return Response.json({"status": resp.status, "ok": resp.ok, "body": await resp.json()})
            if path == "/do":
                stub = self.env.ROWS.get(self.env.ROWS.idFromName("x"))
                return await stub.fetch(request.url)
            if path == "/redirect":
                return Response.redirect("https://example.com/", 301)
            return Response("not found", status=404, status_text="Nope", headers={"x-a": "1"})
'''


@pytest.fixture(scope="module")
def compat(shared_dev):
    """One `edgelet dev` on the compat Worker: every test below only reads from it."""
    return shared_dev({"wrangler_like.toml": TOML, "worker.py": WORKER})


def test_request_method_is_an_http_method(compat):
    s = compat
    assert s.request("PUT", "/method").json() == {"value": "PUT", "is_enum": True, "eq": True}


def test_request_body_is_a_readable_stream(compat):
    s = compat
    got = s.post("/reader", content=b"z" * 200_000).json()
    assert got["size"] == 200_000 and got["parts"] >= 2 and got["none"] is False
    assert s.get("/no-body").json() == {"none": True}


def test_form_data_blob_and_file(compat):
    s = compat
    r = s.post("/upload", data={"name": "ada"}, files={"file": ("notes.txt", b"file body", "text/plain")})
    assert r.json() == {"name": "ada", "filename": "notes.txt", "text": "file body", "type": "text/plain"}
    made = s.get("/make-form")
    assert made.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="doc"; filename="doc.txt"' in made.content and b"hello blob" in made.content


def test_js_and_pyodide_names(compat):
    s = compat
    got = s.get("/js").json()
    assert got["buffer_len"] == 3 and got["to_bytes"] == "abc"
    assert got["digest"] == hashlib.sha256(b"edgelet").hexdigest()
    assert uuid.UUID(got["uuid"]).version == 4
    assert got["keys"] == ["k", "j"] and got["entries"] == [["k", 1], ["j", 2]]
    assert got["x"] == 5 and got["arr"] == [0, 0, 0] and got["proxy"] == 7
    assert got["host"] == "127.0.0.1" and got["values"] == [1] and got["js_response"] == 202
    assert s.get("/pyfetch").json() == {"status": 200, "ok": True,
                                         "body": {"value": "POST", "is_enum": True, "eq": False}}


def test_workers_env_and_helpers(compat):
    s = compat
    assert s.get("/env").json() == {"env": "compat-worker", "module_env": "compat-worker",
                                    "patched": "patched", "after": False, "rpc": 1}


def test_durable_object_sql_rows_allow_attribute_access(compat):
    s = compat
    assert s.get("/do").json() == {"one": "apple", "first_key": "a", "item": "apple"}


def test_response_signature_of_the_sdk(compat):
    s = compat
    r = s.get("/elsewhere")
    assert r.status_code == 404 and r.text == "not found" and r.headers["x-a"] == "1"
    red = s.get("/redirect")
    assert red.status_code == 301 and red.headers["location"] == "https://example.com/"
