"""What the RPC value check costs a Durable Object stub call (the caller's side, in process).

    python bench/do_rpc_check_bench.py [--rounds 7]

Times ``stub.method(*args)`` up to the coroutine it returns (value check + pickling of the
arguments; the send is a stub that does nothing), for no arguments, two plain ones and a
small nested dict. Run it with this tree's venv and with a baseline's to compare.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from edgelet.bindings.durable_objects.isolate.stub import DurableObjectNamespace

CASES: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "no args": ((), {}),
    "('key', 1)": (("key", 1), {}),
    "nested dict": (({"a": [1, 2, 3], "b": {"c": "x", "d": [True, None]}},), {}),
}


async def _send(*args: Any) -> Any:
    return None


def per_call_ns(args: tuple[Any, ...], kwargs: dict[str, Any], n: int = 100_000) -> float:
    ns = DurableObjectNamespace("OBJ", {"namespace_id": "n", "class_name": "Obj", "script": "s"}, _send)
    method = ns.getByName("x").hit
    start = time.perf_counter_ns()
    for _ in range(n):
        method(*args, **kwargs).close()
    return (time.perf_counter_ns() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    opts = parser.parse_args()
    for name, (args, kwargs) in CASES.items():
        runs = [per_call_ns(args, kwargs) for _ in range(opts.rounds)]
        print(f"{name:>14}: median {statistics.median(runs) / 1000:.3f} us per call "
              f"(min {min(runs) / 1000:.3f})")


if __name__ == "__main__":
    main()
