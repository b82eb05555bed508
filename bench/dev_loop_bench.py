"""The development loop (issue 19): `edgelet dev` to `Ready`, and save -> reloaded answer.

    python bench/dev_loop_bench.py [--rounds 5]

- Ready: from starting the process until "Ready on" is printed, for the demo app (9 Workers,
  the repository root) and for one hello Worker. Targets: < 300 ms for hello.
- Reload: a hello Worker's script is rewritten with a new answer; the time until a request
  gets the new answer (file watching, the isolate restart and the request). Also for a
  `vars` edit in the config and for a helper module imported by the script. Target < 500 ms.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
EDGELET = [sys.executable, "-m", "edgelet.cli"]
SCRIPT = """from helper import suffix
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("{token}" + suffix() + self.env.WORD)
"""


def start(cwd: Path) -> tuple[subprocess.Popen[str], float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen([*EDGELET, "dev", "--port", "0", "--in-memory"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("Ready on"):
            return proc, (time.perf_counter() - t0) * 1000, int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"edgelet dev did not start in {cwd}")


def stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def until(url: str, text: str, timeout: float = 10.0) -> float:
    t0 = time.perf_counter()
    with httpx.Client() as client:
        while time.perf_counter() - t0 < timeout:
            try:
                if client.get(url, timeout=5).text == text:
                    return (time.perf_counter() - t0) * 1000
            except httpx.HTTPError:
                pass
            time.sleep(0.002)
    raise TimeoutError(f"{url} never answered {text!r}")


def hello_app(folder: Path) -> None:
    (folder / "wrangler_like.toml").write_text('name = "hello"\nmain = "w.py"\nvars = { WORD = "!" }\n')
    (folder / "helper.py").write_text("def suffix():\n    return ''\n")
    (folder / "w.py").write_text(SCRIPT.format(token="v0"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    rounds = parser.parse_args().rounds
    demo, hello, script, config, helper = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        hello_app(folder)
        for _ in range(rounds):
            proc, ms, _port = start(ROOT)
            demo.append(ms)
            stop(proc)
            proc, ms, port = start(folder)
            hello.append(ms)
            url = f"http://127.0.0.1:{port}/"
            until(url, "v0!")
            time.sleep(0.3)
            for i in range(1, 4):
                t0 = time.perf_counter()
                (folder / "w.py").write_text(SCRIPT.format(token=f"v{i}"))
                until(url, f"v{i}!")
                script.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.2)
            t0 = time.perf_counter()
            (folder / "wrangler_like.toml").write_text(
                'name = "hello"\nmain = "w.py"\nvars = { WORD = "?" }\n')
            until(url, "v3?")
            config.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.2)
            t0 = time.perf_counter()
            (folder / "helper.py").write_text("def suffix():\n    return '+'\n")
            until(url, "v3+?")
            helper.append((time.perf_counter() - t0) * 1000)
            stop(proc)
            hello_app(folder)
    for label, values in (("dev to Ready, demo app (9 Workers)", demo),
                          ("dev to Ready, one hello Worker", hello),
                          ("save script -> new answer", script),
                          ("save config vars -> new answer", config),
                          ("save imported helper -> new answer", helper)):
        print(f"{label:40s} median {statistics.median(values):6.0f} ms   "
              f"min {min(values):6.0f}  max {max(values):6.0f}  (n={len(values)})")


if __name__ == "__main__":
    main()
