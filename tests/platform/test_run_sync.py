"""``pyodide.ffi.run_sync`` from synchronous code in a handler can call bindings, as JSPI
allows on Cloudflare (edgelet.runtime.sync_bridge), under a real `edgelet dev`."""

from __future__ import annotations

TOML = """
    [[workers]]
    name = "app"
    main = "worker.py"
    compatibility_date = "2026-11-01"
    kv_namespaces = [{ binding = "KV", id = "kv" }]

    [[workers]]
    name = "plain"
    main = "plain.py"
"""

PLAIN = '''
    import sys
    from pyodide.ffi import to_js
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            # a Worker that never reaches run_sync runs its handlers without greenlets
            return Response(str("edgelet.runtime.sync_bridge" in sys.modules))
'''

WORKER = '''
    import asyncio
    import contextvars
    from pyodide.ffi import run_sync
    from workers import Response, WorkerEntrypoint

    WHO = contextvars.ContextVar("who", default="nobody")


    def remember(env, key, value):
        """Sync code, several calls deep, using a binding."""
        run_sync(env.KV.put(key, value))
        return run_sync(env.KV.get(key))


    def fails(env):
        try:
            run_sync(env.KV.put("", "x"))  # an empty key: the binding refuses it
        except Exception as exc:
            return type(exc).__name__ + ": " + str(exc)[:40]
        return "no error"


    async def later(x):
        await asyncio.sleep(0.05)
        return x * 2


    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            path = request.url.split("/", 3)[-1]
            if path == "kv":
                WHO.set("handler")
                got = remember(self.env, "greeting", "hi from run_sync")
                mixed = await self.env.KV.get("greeting")  # awaiting still works beside it
                return Response.json({"sync": got, "async": mixed, "who": WHO.get(),
                                      "sleep": run_sync(later(21))})
            if path == "error":
                return Response(fails(self.env))
            if path == "parallel":
                async def one(i):
                    await asyncio.sleep(0.01)
                    return remember(self.env, f"k{i}", str(i))
                return Response.json(await asyncio.gather(*(one(i) for i in range(5))))
            return Response("?", status=404)
'''


def test_run_sync_calls_bindings_from_sync_code(dev):
    s = dev({"wrangler_like.toml": TOML, "worker.py": WORKER, "plain.py": PLAIN})
    r = s.get("/kv")
    assert r.status_code == 200, r.text
    assert r.json() == {"sync": "hi from run_sync", "async": "hi from run_sync", "who": "handler",
                        "sleep": 42}
    err = s.get("/error").text
    assert err != "no error" and "Error" in err, err
    # tasks the handler starts (gather) may use run_sync with bindings too
    assert s.get("/parallel").json() == ["0", "1", "2", "3", "4"]
    assert s.get("/kv").json()["sync"] == "hi from run_sync"  # again: the isolate is fine
    assert s.get("/", headers={"host": "plain.localhost"}).text == "False"
