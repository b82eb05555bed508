"""The explorer (issue 18): time to first render of the instance list at 50,000 instances
and of a 1,000-step timeline, and hello-world req/s with the explorer open and live vs not.

    python bench/explorer_bench.py [--instances 50000] [--steps 1000] [--rounds 3] [--seconds 5]

Needs Debian's chromium (/usr/bin/chromium) and the playwright package (the test extras).
The state is seeded straight into a state folder's workflows.sqlite3 (the layout of
bindings/workflows/schema.py), so the numbers measure the explorer, not creating instances.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Dev, median, wrk  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

APP = {
    "wrangler_like.toml": """
        [[workers]]
        name = "hello"
        main = "hello.py"
        compatibility_date = "2026-11-01"
        workflows = [{ name = "flow", binding = "FLOW", class_name = "Flow" }]
    """,
    "hello.py": """
        from workers import Response, WorkerEntrypoint, WorkflowEntrypoint


        class Flow(WorkflowEntrypoint):
            async def run(self, event, step):
                await step.wait_for_event("go", "go", timeout="1 hour")


        class Default(WorkerEntrypoint):
            async def fetch(self, request):
                return Response("Hello World!")
    """,
}


def write_app(folder: Path) -> None:
    for name, text in APP.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))


def seed(state_dir: Path, workflow: str, instances: int, steps: int) -> str:
    """``instances`` finished instances plus one (``long``) with ``steps`` steps, some retried
    and some sleeps, written the way the engine stores them. Returns the long one's id."""
    from edgelet.bindings.workflows import codec
    from edgelet.bindings.workflows.schema import DATABASE, SCHEMA
    from edgelet.state import database_path, open_database

    conn = open_database(database_path(state_dir, DATABASE), schema=SCHEMA)
    t0 = time.time() - 3600
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO instances (workflow, id, status, params, trigger, created, started, ended, modified) "
        "VALUES (?, ?, 'complete', ?, 'api', ?, ?, ?, ?)",
        ((workflow, f"inst-{i:06d}", codec.encode({"n": i}), t0 + i * 0.01, t0 + i * 0.01,
          t0 + i * 0.01 + 0.5, t0 + i * 0.01 + 0.5) for i in range(instances)))
    conn.execute("INSERT INTO instances (workflow, id, status, params, trigger, created, started, ended, modified) "
                 "VALUES (?, 'long', 'complete', ?, 'api', ?, ?, ?, ?)",
                 (workflow, codec.encode({"steps": steps}), t0, t0, t0 + steps * 0.2, t0 + steps * 0.2))
    seq = conn.execute("SELECT seq FROM instances WHERE workflow = ? AND id = 'long'", (workflow,)).fetchone()[0]
    config = json.dumps({"retries": {"limit": 5, "delay": "10 seconds", "backoff": "exponential"},
                         "timeout": "10 minutes"})
    step_rows, attempt_rows = [], []
    for k in range(steps):
        start = t0 + k * 0.2
        if k % 10 == 9:
            step_rows.append((seq, f"nap-{k}", 1, k, "sleep", "ok", None, None, None, None, start, start + 0.15,
                              start + 0.15))
            continue
        tries = 1 + (k % 7 == 3) + (k % 21 == 3)
        for a in range(tries):
            a_start = start + a * 0.06
            ok = a == tries - 1
            attempt_rows.append((seq, f"step-{k}", 1, a + 1, a_start, a_start + 0.03, int(ok),
                                 None if ok else "RuntimeError", None if ok else f"attempt {a + 1} failed"))
        step_rows.append((seq, f"step-{k}", 1, k, "step", "ok", codec.encode({"k": k, "value": "x" * 40}), None,
                          None, config, start, start + tries * 0.06, None))
    conn.executemany("INSERT INTO steps (instance, name, count, seq, kind, state, value, error_name, "
                     "error_message, config, started, ended, wake_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", step_rows)
    conn.executemany("INSERT INTO attempts (instance, name, count, attempt, started, ended, success, error_name, "
                     "error_message) VALUES (?,?,?,?,?,?,?,?,?)", attempt_rows)
    conn.execute("COMMIT")
    conn.close()
    return "long"


def first_render(page: Any, url: str, ready: str) -> float:
    """Milliseconds from the start of navigation until the page has drawn ``ready``."""
    page.goto(url)
    page.wait_for_selector(ready, state="attached", timeout=60000)
    page.wait_for_function("document.body.dataset.firstRender", timeout=60000)
    return float(page.evaluate("document.body.dataset.firstRender"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_app(folder)
        state = folder / "state"
        t = time.perf_counter()
        seed(state, "flow", args.instances, args.steps)
        print(f"seeded {args.instances:,} instances and a {args.steps}-step one in {time.perf_counter() - t:.1f} s")
        dev = Dev(folder, "--persist-to", str(state))
        base = dev.url + "/cdn-cgi/explorer"
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                lists = [first_render(page, f"{base}/workflows?name=flow", "#instances tbody tr")
                         for _ in range(args.rounds)]
                last = (args.instances + 1 + 49) // 50
                deep = [first_render(page, f"{base}/workflows?name=flow&page={last}", "#instances tbody tr")
                        for _ in range(args.rounds)]
                timelines = [first_render(page, f"{base}/workflows/flow/long", "#timeline g.row")
                             for _ in range(args.rounds)]
                rows = page.locator("#timeline g.row").count()
                load = float(page.evaluate("document.body.dataset.rendered"))  # fetch + draw, last load
                print(f"instance list, {args.instances:,} instances, first render (median): {median(lists):.0f} ms"
                      f"; last page: {median(deep):.0f} ms")
                print(f"timeline, {rows} steps, first render (median): {median(timelines):.0f} ms; "
                      f"fetch + draw alone: {load:.0f} ms")

                # req/s with and without the explorer open and live
                live = browser.new_page()
                created = dev_post(dev.url + "/cdn-cgi/edgelet/api/workflows/flow/instances", {"instance_id": "live"})
                assert created, "could not create the live instance"
                closed, opened = [], []
                wrk(dev.url + "/", seconds=2)
                def with_explorer() -> None:
                    live.goto(f"{base}/workers")  # the log stream, connected
                    second = browser.new_page()
                    second.goto(f"{base}/workflows/flow/live")  # polling a waiting instance
                    second.wait_for_selector("#timeline g.row", state="attached")
                    opened.append(wrk(dev.url + "/", seconds=args.seconds)["rps"])
                    second.close()
                    live.goto("about:blank")

                for n in range(args.rounds):  # alternate which goes first: the machine drifts
                    if n % 2:
                        with_explorer()
                    closed.append(wrk(dev.url + "/", seconds=args.seconds)["rps"])
                    if not n % 2:
                        with_explorer()
                off, on = median(closed), median(opened)
                print(f"hello-world req/s without the explorer: {off:,.0f}; with it open and live: {on:,.0f} "
                      f"({(on - off) / off * 100:+.1f} %)")
                browser.close()
        finally:
            dev.stop()


def dev_post(url: str, body: dict[str, Any]) -> bool:
    import httpx
    return bool(httpx.post(url, json=body, timeout=30).json().get("success"))


if __name__ == "__main__":
    main()
