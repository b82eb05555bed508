"""`edgelet dev`'s start-up stays lean: what it must not import before "Ready on", the fork
server launched first and adopted, and what was moved after Ready still being there when a
request needs it. Not a timing test: bench/dev_start_bench.py measures the time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
from conftest import EDGELET, free_port, write_app

HELLO = {
    "wrangler_like.toml": 'name = "hello"\nmain = "w.py"\n',
    "w.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("hi")
    """,
}

#: modules `edgelet dev` needs only for other commands, the explorer, WebSockets, crons,
#: tests or a debugger: importing one before Ready costs the start-up ~5-130 ms
NOT_BEFORE_READY = (
    "httpx",  # the other CLI commands' client (it imports rich and pygments through its own CLI)
    "psutil",  # stopping isolates
    "rich",  # the start-up table, printed after "Ready on"
    "jinja2", "edgelet.explorer",  # the explorer's pages
    "websockets", "edgelet.ws_protocol",  # the first WebSocket upgrade
    "croniter",  # crons (this app has none)
    "pdb",  # breakpoint()
    "packaging",  # reading a Worker's declared requirements (this app declares none)
    "edgelet.bindings.kv.cli", "edgelet.bindings.d1.cli", "edgelet.bindings.r2.cli",
    "edgelet.bindings.workflows.cli", "edgelet.bindings.queues.cli",
    "edgelet.bindings.durable_objects.cli",
    "edgelet.bindings.kv.plugin", "edgelet.bindings.workflows.engine",  # kinds no Worker declares
    "edgelet.bindings.r2.handle",  # test handles
)


def imported_before_ready(folder: Path) -> set[str]:
    """The modules the `edgelet dev` process imported before it printed "Ready on"
    (``-X importtime`` lines and stdout share one pipe, so their order is kept)."""
    proc = subprocess.Popen([sys.executable, "-X", "importtime", *EDGELET[1:], "dev", "--port", "0",
                             "--in-memory"], cwd=folder, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stdout is not None
    modules: set[str] = set()
    try:
        for line in proc.stdout:
            if line.startswith("Ready on"):
                return modules
            match = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", line)
            if match:
                modules.add(match.group(1))
        raise AssertionError(f"edgelet dev did not start; it imported {len(modules)} modules")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(15)


def test_dev_imports_nothing_it_does_not_need_before_ready(tmp_path: Path) -> None:
    write_app(tmp_path, HELLO)
    modules = imported_before_ready(tmp_path)
    assert "edgelet.host" in modules and "uvicorn" in modules  # the probe sees the real start
    early = sorted(m for m in NOT_BEFORE_READY if m in modules or any(
        n.startswith(m + ".") for n in modules))
    assert early == [], f"imported before Ready: {early}"


def test_importing_the_cli_imports_no_binding_command_and_no_http_client() -> None:
    probe = ("import sys, edgelet.cli; print(sorted(m for m in sys.modules if m == 'httpx' or "
             "m == 'rich' or m.startswith('edgelet.bindings.')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_every_binding_command_is_still_listed_and_runs() -> None:
    listed = subprocess.run([*EDGELET, "--help"], capture_output=True, text=True, check=True).stdout
    for group in ("d1", "durable-objects", "kv", "queues", "r2", "workflows", "dev", "tail"):
        assert re.search(rf"^\s+{group}\s", listed, re.M), f"{group} missing from:\n{listed}"
    shown = subprocess.run([*EDGELET, "durable-objects", "--help"], capture_output=True, text=True)
    assert shown.returncode == 0 and "Usage: python -m edgelet.cli durable-objects" in shown.stdout
    unknown = subprocess.run([*EDGELET, "nope"], capture_output=True, text=True)
    assert unknown.returncode == 2 and "No such command 'nope'" in unknown.stderr


def test_one_fork_server_launched_first_and_adopted(tmp_path: Path) -> None:
    write_app(tmp_path, HELLO)
    port = free_port()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", str(port), "--in-memory"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Ready on"):
                break
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "hi"
        children = psutil.Process(proc.pid).children()
        servers = [c for c in children if "edgelet.runtime.forkserver" in " ".join(c.cmdline())]
        assert len(servers) == 1, [c.cmdline() for c in children]
        isolates = servers[0].children()  # the Worker's isolate is forked from it
        assert len(isolates) == 1
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(15)
    assert proc.returncode == 0


def test_control_api_of_kinds_no_worker_declares_answers_right_after_ready(tmp_path: Path) -> None:
    """The plug-ins of unused kinds start after Ready; a request that needs them waits."""
    write_app(tmp_path, HELLO)
    port = free_port()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", str(port), "--persist-to", "state"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Ready on"):
                break
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            namespaces = client.get("/cdn-cgi/edgelet/api/kv/namespaces").json()
            paths = client.get("/cdn-cgi/edgelet/api/openapi.json").json()["paths"]
            assert client.get("/").text == "hi"
            page = client.get("/cdn-cgi/explorer/", follow_redirects=True)
        assert namespaces["success"] is True and namespaces["result"] == []
        assert any(p.startswith("/cdn-cgi/edgelet/api/workflows") for p in paths)
        assert page.status_code == 200
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert "Traceback" not in err, err
    assert sorted(p.name for p in (tmp_path / "state").glob("*.sqlite3"))  # the stores opened


def test_a_config_error_ends_dev_and_its_early_fork_server(tmp_path: Path) -> None:
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "missing.py"\n'})
    result = subprocess.run([*EDGELET, "dev", "--port", str(free_port()), "--in-memory"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "missing.py" in result.stderr
    leftover = [p for p in psutil.process_iter(["cmdline", "cwd"])
                if "edgelet.runtime.forkserver" in " ".join(p.info["cmdline"] or [])
                and p.info["cwd"] == str(tmp_path)]
    assert leftover == []


def test_a_newer_store_of_an_undeclared_kind_is_named_and_the_workers_keep_serving(tmp_path: Path) -> None:
    """Stores of kinds no Worker declares open after Ready: one from a newer edgelet is an
    error line there (the start is not refused), and that kind is left out of the API."""
    import sqlite3

    write_app(tmp_path, HELLO)
    (tmp_path / "state").mkdir()
    newer = tmp_path / "state" / "kv.sqlite3"
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 999")
    port = free_port()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", str(port), "--persist-to", "state"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Ready on"):
                break
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            assert client.get("/").text == "hi"
            kv = client.get("/cdn-cgi/edgelet/api/kv/namespaces")
            workers = client.get("/cdn-cgi/edgelet/api/workers").json()
        assert kv.status_code == 404 and workers["success"] is True
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    assert "the kv plug-in did not start" in err and "written by a newer edgelet" in err, err
    assert str(newer) in err and "Traceback" not in err
    with sqlite3.connect(newer) as conn:  # nothing was changed (no upgrade, no table)
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 999
        assert conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
