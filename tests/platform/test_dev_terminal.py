"""`edgelet dev` as a wrangler user meets it in a terminal (issue 19): the start-up table,
colours only in a terminal, the hotkeys, and breakpoint() opening pdb there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import EDGELET, write_app
from devterm import dev_terminal, needs_tmux

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "api"
        main = "api.py"
        vars = { GREETING = "hi" }
        kv_namespaces = [{ binding = "CACHE", id = "cache" }]
        queues.producers = [{ binding = "JOBS", queue = "jobs" }]
        triggers.crons = ["*/5 * * * *"]

        [[workers]]
        name = "worker"
        main = "worker.py"
        queues.consumers = [{ queue = "jobs" }]
    """,
    "api.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                if request.url.endswith("/debug"):
                    answer = 41
                    breakpoint()
                    return Response(f"answer={answer}")
                return Response("api")

            async def scheduled(self, controller, env, ctx):
                pass
    """,
    "worker.py": """
        from workers import Response, WorkerEntrypoint

        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("worker")

            async def queue(self, batch, env, ctx):
                pass
    """,
}


#: an escape sequence that sets a foreground colour (bold alone is allowed under NO_COLOR)
COLOUR = re.compile(r"\x1b\[(?:[0-9]+;)*(?:3[0-8]|9[0-7])(?:;[0-9]+)*m")


@pytest.fixture
def term(tmp_path: Path) -> Iterator[Any]:
    start = dev_terminal(tmp_path)
    yield start
    for session in start.sessions:  # type: ignore[attr-defined]
        session.close()


def _piped_start(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], str]:
    """Start dev with stdout piped; return it and everything printed up to the State line."""
    proc = subprocess.Popen([*EDGELET, "dev", "--port", "0", "--in-memory", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            text=True, start_new_session=True, env={**os.environ, **(env or {})})
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("State:"):
            break
    return proc, "".join(lines)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def test_start_up_table_lists_workers_urls_bindings_crons_and_the_explorer(tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    proc, out = _piped_start(tmp_path)
    try:
        port = int(re.search(r"Ready on http://127\.0\.0\.1:(\d+)", out).group(1))  # type: ignore[union-attr]
        assert "\x1b[" not in out, "no colour codes when stdout is piped"
        api_row = next(line for line in out.splitlines() if "│ api" in line)
        assert f"http://127.0.0.1:{port}" in api_row and "*/5 * * * *" in api_row
        assert f"http://worker.localhost:{port}" in out
        assert "KV: CACHE" in out and "Queues: JOBS" in out and "Vars: GREETING" in out
        assert "Queues: consumes jobs" in out
        assert f"Explorer: http://127.0.0.1:{port}/cdn-cgi/explorer" in out
        assert "[b]" not in out, "no hotkeys when stdin is not a terminal"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "api"
    finally:
        _kill(proc)


def test_breakpoint_without_a_terminal_is_a_clear_error_not_bdbquit(tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    proc, out = _piped_start(tmp_path)
    try:
        port = int(re.search(r"Ready on http://127\.0\.0\.1:(\d+)", out).group(1))  # type: ignore[union-attr]
        resp = httpx.get(f"http://127.0.0.1:{port}/debug", timeout=10)
        assert resp.status_code == 500
        assert "BdbQuit" not in resp.text
        assert "breakpoint() at api.py:7" in resp.text and "in a terminal" in resp.text, resp.text
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "api"  # still serving
    finally:
        _kill(proc)


@needs_tmux
def test_terminal_gets_colours_and_hotkeys(term: Any, tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    opened = tmp_path / "opened.txt"
    t = term("--port", "0", "--in-memory",
             env={"BROWSER": f"sh -c 'echo %s >> {opened}'"})
    port = t.wait_for(r"Ready on http://127\.0\.0\.1:(\d+)").group(1)
    t.wait_for(r"\[b\] open a browser +\[e\] open the explorer +\[c\] clear console +\[x\] to exit")
    assert COLOUR.search(t.screen(colours=True)), "a terminal gets colours"

    t.keys("b")
    t.keys("e")
    t.wait_for("Opening .*/cdn-cgi/explorer")
    for _ in range(200):  # each key starts its browser in a thread: either may finish first
        if opened.exists() and len(opened.read_text().split()) == 2:
            break
        threading.Event().wait(0.1)
    assert sorted(opened.read_text().split()) == [f"http://127.0.0.1:{port}/",
                                                  f"http://127.0.0.1:{port}/cdn-cgi/explorer"]
    t.keys("c")
    for _ in range(50):  # the screen is cleared: the hotkey line is all there is
        if t.screen(history=False).strip().startswith("[b] open a browser"):
            break
        threading.Event().wait(0.1)
    assert t.screen(history=False).strip().startswith("[b] open a browser"), t.screen(history=False)
    t.keys("x")
    t.wait_for("EXITED 0")


@needs_tmux
def test_no_color_turns_colours_off_in_a_terminal(term: Any, tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    t = term("--port", "0", "--in-memory", env={"NO_COLOR": "1"})
    t.wait_for(r"\[x\] to exit")
    assert not COLOUR.search(t.screen(colours=True).split("Ready on")[1])
    t.keys("x")
    t.wait_for("EXITED 0")


@needs_tmux
def test_breakpoint_opens_pdb_in_the_terminal_while_other_workers_serve(term: Any, tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    t = term("--port", "0", "--in-memory")
    port = t.wait_for(r"Ready on http://127\.0\.0\.1:(\d+)").group(1)
    t.wait_for(r"\[x\] to exit")
    result: dict[str, Any] = {}

    def call() -> None:
        result["resp"] = httpx.get(f"http://127.0.0.1:{port}/debug", timeout=120)

    waiting = threading.Thread(target=call)
    waiting.start()
    t.wait_for(r"breakpoint\(\) in Worker 'api' at api\.py:7")
    t.wait_for(r"\(Pdb\)")
    # the request waits at the prompt; another Worker answers meanwhile
    other = httpx.get(f"http://127.0.0.1:{port}/", headers={"host": f"worker.localhost:{port}"}, timeout=10)
    assert other.text == "worker"
    assert "resp" not in result
    t.keys("p answer + 1", "Enter")
    t.wait_for(r"\n42\n")
    # lines typed faster than pdb answers are all read (one read-write file dropped them)
    t.keys("answer = 7", "Enter", "p answer * 3", "Enter", "c", "Enter")
    waiting.join(30)
    t.wait_for(r"\(Pdb\) 21\n")
    assert result["resp"].status_code == 200 and result["resp"].text == "answer=7"
    t.wait_for("Worker 'api' resumed")
    t.keys("x")  # hotkeys work again after the debugger hands the terminal back
    t.wait_for("EXITED 0")


@needs_tmux
def test_a_large_upload_shows_a_progress_bar_in_a_terminal(tmp_path: Path) -> None:
    from devterm import Terminal
    write_app(tmp_path, {"wrangler_like.toml": 'name = "f"\nmain = "f.py"\n'
                                               'r2_buckets = [{ binding = "FILES", bucket_name = "files" }]\n',
                         "f.py": APP["worker.py"]})
    (tmp_path / "big.bin").write_bytes(b"x" * (20 * 1024 * 1024))
    sock_dir = tmp_path / "tmux"
    sock_dir.mkdir()
    shell = Terminal("upload", tmp_path, sock_dir)
    try:  # no dev runs: the CLI writes the state folder itself
        shell.start([*EDGELET, "r2", "object", "put", "files/big.bin", "--file", "big.bin", "--port", "1"],
                    {"PATH": os.environ.get("PATH", ""), "TERM": "xterm-256color"})
        shell.wait_for(r"Uploaded 20971520 bytes to files/big\.bin", timeout=60)
        screen = shell.screen()
        assert "Uploading files/big.bin" in screen and "21.0/21.0 MB" in screen, screen
    finally:
        shell.close()
