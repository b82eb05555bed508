"""What an edit restarts under `edgelet dev` (issue 19): config and .dev.vars edits restart
the Workers they touch and say which, a broken edit keeps the running version, and a .py
edit reloads only the Workers that imported the file."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from conftest import DevServer

CONFIG = """
[[workers]]
name = "alpha"
main = "workers/alpha.py"
vars = { WORD = "one" }

[[workers]]
name = "beta"
main = "workers/beta.py"
"""
ALPHA = """
    from helpers import suffix
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(f"{self.env.WORD}{suffix()}:{getattr(self.env, 'TOKEN', '-')}")
"""
BETA = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response("beta")
"""
APP = {"wrangler_like.toml": CONFIG, "workers/alpha.py": ALPHA, "workers/beta.py": BETA,
       "workers/helpers.py": "def suffix():\n    return '!'\n"}


def _until(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def _pids(s: DevServer) -> dict[str, int]:
    return {w["name"]: w["pid"] for w in s.api("GET", "/workers")["result"]}


def test_a_var_edit_restarts_only_that_worker_and_says_so(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    before = _pids(s)
    assert s.get("/").text == "one!:-"
    config = s.cwd / "wrangler_like.toml"
    config.write_text(CONFIG.replace('WORD = "one"', 'WORD = "two"'))
    assert _until(lambda: s.get("/").text == "two!:-"), s.logs()
    assert "wrangler_like.toml changed: restarting alpha" in s.logs()
    after = _pids(s)
    assert after["beta"] == before["beta"] and after["alpha"] != before["alpha"]


def test_a_dev_vars_edit_restarts_the_workers_and_names_the_file(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    (s.cwd / ".dev.vars").write_text("TOKEN=sekret\n")
    assert _until(lambda: s.get("/").text == "one!:sekret"), s.logs()
    assert ".dev.vars changed: restarting alpha, beta" in s.logs()


def test_a_broken_edit_keeps_the_running_version_and_prints_the_error(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    config = s.cwd / "wrangler_like.toml"
    config.write_text(CONFIG.replace('WORD = "one"', 'WORD = "two"').replace('name = "beta"', 'name = "Beta!"'))
    assert _until(lambda: "does not load; still running the previous version" in s.logs()), s.logs()
    assert "is not a valid Worker name" in s.logs()
    assert s.get("/").text == "one!:-"
    config.write_text(CONFIG.replace('WORD = "one"', 'WORD = "three"'))  # fixed: applied
    assert _until(lambda: s.get("/").text == "three!:-"), s.logs()


def test_a_binding_edit_restarts_the_platform_with_the_new_binding(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    config = s.cwd / "wrangler_like.toml"
    config.write_text(CONFIG.replace('vars = { WORD = "one" }',
                                     'vars = { WORD = "one" }\nkv_namespaces = [{ binding = "TOKEN", id = "t" }]'))
    assert _until(lambda: "KVNamespace" in s.get("/").text or "KV" in s.get("/").text.upper()), s.get("/").text
    assert "restarting all Workers (the bindings or crons of alpha changed)" in s.logs()


def test_a_py_edit_reloads_only_the_workers_that_imported_it(dev: Any) -> None:
    s = dev(APP, "--in-memory")
    before = _pids(s)
    (s.cwd / "workers/helpers.py").write_text("def suffix():\n    return '?'\n")
    assert _until(lambda: s.get("/").text == "one?:-"), s.logs()
    time.sleep(0.3)
    after = _pids(s)
    assert after["alpha"] != before["alpha"]
    assert after["beta"] == before["beta"], "beta never imported helpers.py"
    assert "Reloaded Worker 'beta'" not in s.logs()
    # and beta's own script still reloads beta alone
    (s.cwd / "workers/beta.py").write_text(BETA.replace('"beta"', '"beta 2"').replace("\n    ", "\n"))
    assert _until(lambda: s.get("/", headers={"host": "beta.localhost"}).text == "beta 2"), s.logs()
    assert _pids(s)["alpha"] == after["alpha"]


LAZY = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            from lazy_part import word  # imported on the first request, not at start
            return Response(word())
"""


def test_a_module_imported_inside_a_handler_reloads_its_worker_when_edited(dev: Any) -> None:
    """Python Workers import heavy modules inside handlers; an edit to one used to be
    ignored (only the start's imports were known) and the old code kept running."""
    s = dev({**APP, "workers/beta.py": LAZY, "workers/lazy_part.py": "def word():\n    return 'v1'\n"},
            "--in-memory")
    beta = {"host": "beta.localhost"}
    assert s.get("/", headers=beta).text == "v1"
    alpha = _pids(s)["alpha"]
    time.sleep(0.6)  # the isolate reports its new import within a quarter second
    (s.cwd / "workers/lazy_part.py").write_text("def word():\n    return 'v2'\n")
    assert _until(lambda: s.get("/", headers=beta).text == "v2"), s.logs()
    assert "lazy_part.py changed: reloading beta" in s.logs()
    assert _pids(s)["alpha"] == alpha, "alpha never imported lazy_part.py"


TASKS = """
    import asyncio
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            return Response(" ".join(sorted(t.get_coro().__qualname__ for t in asyncio.all_tasks())))
"""


def test_the_late_import_poll_runs_only_where_edits_reload(dev: Any) -> None:
    """Each isolate polled ``sys.modules`` 4 times a second for late imports even when
    nothing would reload it (``--no-reload``, ``edgelet.testing``, benchmarks)."""
    app = {"wrangler_like.toml": 'name = "w"\nmain = "w.py"\n', "w.py": TASKS}
    assert "report_late_imports" in dev(app, "--in-memory").get("/").text
    assert "report_late_imports" not in dev(app, "--in-memory", "--no-reload").get("/").text


def _until_logged(s: DevServer, text: str, timeout: float = 15.0) -> None:
    """Wait until dev's log shows ``text``: a fixed sleep is too short on a loaded machine."""
    deadline = time.monotonic() + timeout
    while text not in s.logs():
        assert time.monotonic() < deadline, f"{text!r} never logged:\n{s.logs()[-2000:]}"
        time.sleep(0.01)


SLOW = """
    import asyncio
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            if request.url.endswith("/slow"):
                print("slow request started on {version}")
                await asyncio.sleep({delay})
            return Response("{version}")
"""


def test_a_request_in_flight_during_a_reload_finishes_or_is_told_why(dev: Callable[..., DevServer]) -> None:
    """A save while a request is being served: a short request finishes on the old code; one
    still running after the reload's short wait gets a 503 that says the Worker was reloaded
    (it used to say the Worker had crashed with SIGKILL)."""
    import textwrap
    import threading

    import httpx

    s = dev({"wrangler_like.toml": 'name = "w"\nmain = "w.py"\n', "w.py": SLOW.format(delay=0.1, version="v1")})
    answers: dict[str, httpx.Response] = {}
    short = threading.Thread(target=lambda: answers.__setitem__("short", httpx.get(s.url + "/slow", timeout=30)))
    short.start()
    _until_logged(s, "slow request started on v1")  # the request is in the Worker
    (s.cwd / "w.py").write_text(textwrap.dedent(SLOW.format(delay=30, version="v2")))
    short.join(30)
    assert answers["short"].status_code == 200 and answers["short"].text == "v1"
    assert _until(lambda: s.get("/").text == "v2")

    stuck = threading.Thread(target=lambda: answers.__setitem__("stuck", httpx.get(s.url + "/slow", timeout=30)))
    stuck.start()
    _until_logged(s, "slow request started on v2")
    (s.cwd / "w.py").write_text(textwrap.dedent(SLOW.format(delay=0, version="v3")))
    stuck.join(30)
    assert answers["stuck"].status_code == 503
    assert "Worker 'w' was reloaded (its code changed) while handling fetch" in answers["stuck"].text
    assert "SIGKILL" not in answers["stuck"].text
    assert _until(lambda: s.get("/").text == "v3")
