"""`edgelet dev` start-up, A/B: alternate interpreters (venvs of two trees), medians.

    python bench/dev_start_bench.py [--rounds 7] [--python A/.venv/bin/python ...] [--app hello|demo]

Each run starts ``PYTHON -m edgelet.cli dev --port 0 --in-memory`` and stops it once it
prints ``Ready on``. Two figures per run:

- wall: from starting the process until ``Ready on`` (what a user waits);
- CPU: user + system time of the whole process tree (host, fork server, isolates) read at
  ``Ready``. On a machine shared with other work the CPU time moves far less than the wall
  time, so an A/B of it shows a change that the wall time hides in noise.

Runs alternate between the interpreters (A B A B ...) so that load drifts hit both alike.
By default it compares this tree's venv with /work/main's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness.procs import tree_cpu  # noqa: E402
from hello_ab import stop  # noqa: E402

HELLO = """from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("hello")
"""


def one_start(python: str, cwd: Path) -> tuple[float, float]:
    """(ms to "Ready on", CPU ms of the tree at that moment)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([python, "-m", "edgelet.cli", "dev", "--port", "0", "--in-memory"],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("Ready on"):
                wall = (time.perf_counter() - t0) * 1000
                return wall, tree_cpu(proc.pid) * 1000
        raise RuntimeError(f"{python}: edgelet dev did not start in {cwd}")
    finally:
        stop(proc)  # type: ignore[arg-type]  # (a text-mode Popen; stop only signals it)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--python", action="append", default=None,
                        help="an interpreter whose venv has edgelet installed (repeat; default: "
                             "this tree's and /work/main's)")
    parser.add_argument("--app", choices=["hello", "demo"], default="hello")
    args = parser.parse_args()
    pythons = args.python or [str(ROOT / ".venv/bin/python"), "/work/main/.venv/bin/python"]
    results: dict[str, list[tuple[float, float]]] = {p: [] for p in pythons}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.app == "hello":
            (folder / "wrangler_like.toml").write_text('name = "hello"\nmain = "w.py"\n')
            (folder / "w.py").write_text(HELLO)
        else:
            folder = ROOT
        for p in pythons:  # one unmeasured start each: file caches, .pyc files
            one_start(p, folder)
        for _ in range(args.rounds):
            for p in pythons:
                results[p].append(one_start(p, folder))
                time.sleep(0.2)
    base_wall = base_cpu = None
    print(f"app: {args.app}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    for p, runs in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        ratio = ""
        if base_wall is None:
            base_wall, base_cpu = wall, cpu
        else:
            ratio = f"  (this / first: wall {wall / base_wall:.2f}x, cpu {cpu / base_cpu:.2f}x)"
        print(f"{p}\n    wall median {wall:6.0f} ms (min {min(r[0] for r in runs):4.0f}, "
              f"max {max(r[0] for r in runs):4.0f})   cpu median {cpu:6.0f} ms{ratio}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
