"""Worker Loader through a real `edgelet dev`: an app in the style of Cloudflare's example 17
loads a Python Worker from a string, forwards requests to it and calls it over RPC."""

from __future__ import annotations

CONFIG = """
name = "parent"
main = "src/entry.py"
compatibility_date = "2026-04-01"
worker_loaders = [{ binding = "LOADER" }]
"""

PARENT = '''
from js import Object
from pyodide.ffi import create_proxy, to_js
from workers import Response, WorkerEntrypoint

CALLS = {"code": 0}

DYNAMIC = """
import os
from workers import Response, WorkerEntrypoint
from helper import shout


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        if request.url.endswith("/boom"):
            raise ValueError("boom inside the loaded Worker")
        return Response(shout(f"hello from a loaded Worker, {self.env.GREETING}; pid {os.getpid()}"))

    async def add(self, a, b):
        return {"sum": a + b}


class Admin(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("admin entrypoint")
"""


def _worker_code():
    CALLS["code"] += 1
    return to_js({
        "compatibilityDate": "2026-04-01",
        "compatibilityFlags": ["python_workers"],
        "mainModule": "entry.py",
        "modules": {"entry.py": DYNAMIC, "helper.py": "def shout(s):\\n    return s.upper()\\n"},
        "env": {"GREETING": "welcome"},
    }, dict_converter=Object.fromEntries)


class Default(WorkerEntrypoint):
    async def fetch(self, request):
        worker = self.env.LOADER.get("hello-python-v1", create_proxy(_worker_code))
        path = request.url.split("/", 3)[3]
        if path == "rpc":
            return Response.json(await worker.getEntrypoint().add(2, 3))
        if path == "admin":
            return await worker.getEntrypoint("Admin").fetch(request)
        if path == "pid":
            import os
            return Response(str(os.getpid()))
        if path == "calls":
            return Response(str(CALLS["code"]))
        if path == "js":
            bad = self.env.LOADER.get("js-one", lambda: {"mainModule": "a.js", "modules": {"a.js": "x"}})
            try:
                await bad.getEntrypoint().fetch(request)
            except Exception as exc:
                return Response(f"{type(exc).__name__}: {exc}", status=500)
        return await worker.getEntrypoint().fetch(request)
'''


def test_a_loaded_worker_answers_fetch_and_rpc_in_its_own_isolate(dev):
    s = dev({"wrangler_like.toml": CONFIG, "src/entry.py": PARENT})
    first = s.get("/")
    assert first.status_code == 200, first.text
    assert first.text.startswith("HELLO FROM A LOADED WORKER, WELCOME; PID ")
    dynamic_pid = first.text.rsplit(" ", 1)[1]
    assert s.get("/again").text == first.text  # cached by id: same isolate
    assert s.get("/calls").text == "1"  # the callback ran once for the id
    assert s.get("/rpc").json() == {"sum": 5}
    assert s.get("/admin").text == "admin entrypoint"
    assert dynamic_pid.isdigit() and dynamic_pid != s.get("/pid").text  # its own isolate


def test_a_loaded_workers_exception_is_a_500_and_non_python_code_is_refused(dev):
    s = dev({"wrangler_like.toml": CONFIG, "src/entry.py": PARENT})
    boom = s.get("/boom")
    assert boom.status_code == 500 and "boom inside the loaded Worker" in boom.text
    js = s.get("/js")
    assert js.status_code == 500
    assert "mainModule 'a.js' is not a Python module" in js.text and "js-one" in js.text
