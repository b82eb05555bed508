"""The platform host over real HTTP: routing, Worker API, isolation and crash containment."""

from __future__ import annotations

import time

import pytest

HELLO = {
    "wrangler_like.toml": """
        [[workers]]
        name = "front"
        main = "front.py"
        vars = { WHO = "edgelet", CONF = { depth = 2 } }
        services = [{ binding = "BACK", service = "back" }, { binding = "ADMIN", service = "back", entrypoint = "Admin" }]
        limits = { cpu_ms = 1000, request_timeout_ms = 20000 }

        [[workers]]
        name = "back"
        main = "back.py"
        limits = { request_timeout_ms = 2000 }
    """,
    "front.py": """
        import os, ctypes, asyncio, json
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request, env, ctx):
                path = request.url.split("/", 3)[3].split("?")[0]
                if path == "":
                    return Response(f"hi {self.env.WHO} {env.CONF['depth']}")
                if path == "json":
                    return Response.json({"method": request.method, "body": await request.json()})
                if path == "headers":
                    return Response("x", status=201, headers={"X-Custom": "yes"})
                if path == "redirect":
                    return Response.redirect("https://example.com/", 301)
                if path == "raise":
                    raise ZeroDivisionError("boom in front")
                if path == "exit":
                    os._exit(3)
                if path == "segfault":
                    ctypes.string_at(0)
                if path == "loop":
                    while True:
                        pass
                if path == "slow":
                    await asyncio.sleep(2)
                    return Response("slow done")
                if path == "stall":
                    print("stall started")
                    await asyncio.sleep(60)
                if path == "hang":
                    await asyncio.sleep(3600)
                if path == "memory":
                    hog = bytearray(2 * 1024 * 1024 * 1024)
                    return Response(str(len(hog)))
                if path == "pid":
                    return Response(str(os.getpid()))
                if path == "svc":
                    r = await self.env.BACK.fetch("/inner")
                    return Response(f"back said {r.status} {await r.text()}")
                if path == "rpc":
                    return Response(str(await self.env.BACK.add(2, 3)))
                if path == "rpc-error":
                    try:
                        await self.env.BACK.fail()
                    except Exception as exc:
                        return Response(f"{type(exc).__name__}: {exc}")
                if path == "named":
                    return Response(await self.env.ADMIN.whoami())
                if path == "bytes":
                    return Response(bytes(range(256)))
                if path == "waituntil":
                    async def later():
                        print("wait_until ran")
                    ctx.wait_until(later())
                    return Response("ok")
                return Response("nope", status=404)
        """,
    "back.py": """
        from workers import Response, WorkerEntrypoint

        import asyncio

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/hang"):
                    await asyncio.sleep(3600)
                return Response("inner:" + request.url)

            async def add(self, a, b):
                return a + b

            async def fail(self):
                raise ValueError("back refuses")

        class Admin(WorkerEntrypoint):
            async def whoami(self):
                return "admin entrypoint"
        """,
}


@pytest.fixture(scope="module")
def hello(shared_dev):
    """One `edgelet dev` on HELLO for the tests below: each leaves it serving as it found it
    (a crashed or killed isolate is restarted, which is what they check)."""
    return shared_dev(HELLO)


def test_worker_api_over_http(hello):
    s = hello
    r = s.get("/")
    assert r.status_code == 200 and r.text == "hi edgelet 2"
    assert r.headers["content-type"] == "text/plain;charset=UTF-8"
    r = s.post("/json", json={"a": [1, 2]})
    assert r.json() == {"method": "POST", "body": {"a": [1, 2]}}
    assert r.headers["content-type"] == "application/json"
    r = s.get("/headers")
    assert r.status_code == 201 and r.headers["x-custom"] == "yes"
    r = s.get("/redirect", follow_redirects=False)
    assert r.status_code == 301 and r.headers["location"] == "https://example.com/"
    assert s.get("/bytes").content == bytes(range(256))


def test_host_names_route_to_workers(hello):
    s = hello
    r = s.get("/anything", headers={"host": f"back.localhost:{s.port}"})
    assert r.text.startswith("inner:http://back.localhost")
    assert s.get("/", headers={"host": "unknown.localhost"}).text == "hi edgelet 2"


def test_service_binding_fetch_and_rpc(hello):
    s = hello
    assert s.get("/svc").text == "back said 200 inner:http://back.localhost/inner"
    assert s.get("/rpc").text == "5"
    assert s.get("/rpc-error").text == "ValueError: back refuses"
    assert s.get("/named").text == "admin entrypoint"


def test_uncaught_exception_is_500_and_platform_keeps_serving(hello):
    s = hello
    r = s.get("/raise")
    assert r.status_code == 500
    assert "ZeroDivisionError: boom in front" in r.text
    assert s.get("/").status_code == 200
    assert "ZeroDivisionError" in s.logs()


def test_crashes_are_contained_and_isolate_restarts(hello):
    s = hello
    pid = s.get("/pid").text
    for path, words in [("/exit", "exited with code 3"), ("/segfault", "SIGSEGV"),
                        ("/loop", "CPU limit"), ("/memory", "memory limit")]:
        r = s.get(path, timeout=20)
        assert r.status_code >= 500, path
        assert words in r.text, (path, r.text)
        # the other Worker never noticed; this one is back
        assert s.get("/x", headers={"host": "back.localhost"}).status_code == 200
        assert s.get("/").text == "hi edgelet 2"
    assert s.get("/pid").text != pid


def test_worker_that_never_answers_times_out_with_504(hello):
    s = hello
    t0 = time.monotonic()
    r = s.get("/hang", headers={"host": "back.localhost"}, timeout=20)
    assert r.status_code == 504
    assert "did not answer" in r.text
    assert time.monotonic() - t0 < 10
    assert s.get("/", headers={"host": "back.localhost"}).status_code == 200


def test_wait_until_runs_after_response(hello):
    s = hello
    assert s.get("/waituntil").text == "ok"
    s.wait_for_log("wait_until ran", 5)
    assert "[front] wait_until ran" in s.logs()


def test_request_body_over_limit_is_413(dev):
    s = dev(HELLO, "--max-body-size", "1000")
    r = s.post("/json", content=b"x" * 5000)
    assert r.status_code == 413
    assert "1000 bytes" in r.text
    assert s.post("/json", json={"ok": 1}).status_code == 200


def test_cdn_cgi_is_reserved_and_scheduled_runs(dev):
    s = dev({**HELLO, "front.py": HELLO["front.py"] + """
            async def scheduled(self, controller):
                print("scheduled", controller.cron)
        """})
    r = s.get("/cdn-cgi/handler/scheduled?cron=*+*+*+*+*")
    assert r.status_code == 200
    s.wait_for_log("scheduled * * * * *", 5)
    assert "scheduled * * * * *" in s.logs()
    assert s.get("/cdn-cgi/unknown").status_code == 404
    workers = s.api("GET", "/workers")
    assert workers["success"] is True
    assert [w["name"] for w in workers["result"]] == ["front", "back"]


def test_killing_an_isolate_fails_only_in_flight_requests(hello):
    import os
    import signal
    from concurrent.futures import ThreadPoolExecutor

    s = hello
    pid = int(s.get("/pid").text)
    started = s.logs().count("stall started")
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(s.get, "/stall", timeout=20) for _ in range(6)]
        deadline = time.monotonic() + 20  # all six are inside the Worker: polled, not guessed
        while s.logs().count("stall started") < started + 6:
            assert time.monotonic() < deadline, s.logs()[-2000:]
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
        results = [f.result() for f in futures]
    assert all(r.status_code == 503 for r in results), [r.status_code for r in results]
    assert all("SIGKILL" in r.text for r in results)
    assert s.get("/x", headers={"host": "back.localhost"}).status_code == 200
    assert s.get("/slow", timeout=20).text == "slow done"
    assert int(s.get("/pid").text) != pid


def test_print_from_a_worker_thread_reaches_the_log(dev):
    s = dev({"wrangler_like.toml": 'name = "t"\nmain = "t.py"\n', "t.py": """
        import asyncio
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                await asyncio.to_thread(print, "hello from a thread")
                return Response("ok")
        """})
    assert s.get("/").text == "ok"
    s.wait_for_log("hello from a thread", 5)
    assert "[t] hello from a thread" in s.logs()
