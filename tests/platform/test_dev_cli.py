"""`edgelet dev` as a user runs it: start-up errors, reload, tail, assets safety."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx

from conftest import EDGELET, free_port, write_app

HELLO_PY = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            print("handling", request.url)
            return Response("v1")
"""


def run_dev(folder: Path, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGELET, "dev", "--port", str(free_port()), "--in-memory", *args],
                          cwd=folder, capture_output=True, text=True, timeout=timeout)


def test_malformed_toml_names_file_and_line(tmp_path):
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "w.py\n', "w.py": HELLO_PY})
    result = run_dev(tmp_path)
    assert result.returncode != 0
    assert "wrangler_like.toml" in result.stderr and ":2" in result.stderr
    assert "Ready on" not in result.stdout


def test_malformed_jsonc_names_file(tmp_path):
    write_app(tmp_path, {"wrangler.jsonc": '{\n // comment\n "name": "x",\n "main": "w.py",, }\n',
                         "w.py": HELLO_PY})
    result = run_dev(tmp_path)
    assert result.returncode != 0
    assert "wrangler.jsonc" in result.stderr


def test_missing_main_and_absent_file(tmp_path):
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\n'})
    result = run_dev(tmp_path)
    assert result.returncode != 0 and "main" in result.stderr and "Fix" in result.stderr
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "nope.py"\n'})
    result = run_dev(tmp_path)
    assert result.returncode != 0 and "nope.py" in result.stderr


def test_main_that_does_not_import_shows_traceback_line(tmp_path):
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n',
                         "w.py": "import json\n\nvalue = 1 / 0\n"})
    result = run_dev(tmp_path)
    assert result.returncode != 0
    assert "ZeroDivisionError" in result.stderr
    assert 'w.py", line 3' in result.stderr


def test_script_without_handler_is_a_clear_error(tmp_path):
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n',
                         "w.py": "def helper():\n    return 1\n"})
    result = run_dev(tmp_path)
    assert result.returncode != 0
    assert "defines no handler" in result.stderr and "class Default(WorkerEntrypoint)" in result.stderr


def test_port_in_use(tmp_path):
    write_app(tmp_path, {"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n', "w.py": HELLO_PY})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = subprocess.run([*EDGELET, "dev", "--port", str(port), "--in-memory"], cwd=tmp_path,
                                capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_editing_a_script_reloads_its_isolate(dev):
    s = dev({"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n', "w.py": HELLO_PY}, "--in-memory")
    assert s.get("/").text == "v1"
    (s.cwd / "w.py").write_text((s.cwd / "w.py").read_text().replace('"v1"', '"v2"'))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and s.get("/").text != "v2":
        time.sleep(0.1)
    assert s.get("/").text == "v2"
    assert "Reloaded Worker 'x'" in s.logs()


def test_tail_streams_request_and_worker_logs(dev):
    import queue
    import threading

    s = dev({"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n', "w.py": HELLO_PY}, "--in-memory")
    tail = subprocess.Popen([*EDGELET, "tail", "--port", str(s.port), "--json"],
                            stdout=subprocess.PIPE, text=True)
    received: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [received.put(line) for line in tail.stdout], daemon=True).start()
    try:
        # tail connects in its own time (slow on a loaded machine): ask until its lines come
        lines = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(lines) < 2:
            s.get("/from-tail")
            try:
                while len(lines) < 2:
                    lines.append(json.loads(received.get(timeout=0.5)))
            except queue.Empty:
                pass
        messages = " ".join(str(e.get("message")) for e in lines)
        assert "handling http://127.0.0.1" in messages
        assert any(e.get("worker") == "x" for e in lines)
    finally:
        tail.kill()


def test_assets_block_path_traversal(dev, tmp_path):
    (tmp_path / "secret.txt").write_text("do not serve")

    folder = tmp_path / "app"
    write_app(folder, {"wrangler_like.toml": 'name = "x"\nmain = "w.py"\nassets = { directory = "public" }\n',
                       "w.py": HELLO_PY, "public/index.html": "<h1>home</h1>", "public/style.css": "body{}"})
    s = dev(None, "--in-memory", cwd=folder)
    assert s.get("/").text == "<h1>home</h1>"
    assert s.get("/style.css").headers["content-type"].startswith("text/css")
    for attack in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt"]:
        r = httpx.get(s.url + attack) if "%" in attack else s.get(attack)
        assert "do not serve" not in r.text, attack
    raw = subprocess.run(["curl", "-s", "--path-as-is", s.url + "/../secret.txt"],
                         capture_output=True, text=True)
    assert "do not serve" not in raw.stdout
    assert s.get("/missing.txt").text == "v1"  # falls through to the Worker


def test_sigint_and_sigterm_stop_cleanly_leaving_no_isolates(dev):
    import signal

    import psutil

    for sig in (signal.SIGINT, signal.SIGTERM):
        s = dev({"wrangler_like.toml": 'name = "x"\nmain = "w.py"\n', "w.py": HELLO_PY}, "--in-memory")
        assert s.get("/").text == "v1"
        children = psutil.Process(s.proc.pid).children(recursive=True)
        assert children  # the fork server and the isolate
        s.proc.send_signal(sig)
        assert s.proc.wait(15) == 0
        assert "stopped" in s.logs()
        _, alive = psutil.wait_procs(children, timeout=5)
        assert not alive
