"""What a test reads of a running process: CPU seconds of its tree, its peak memory.

CPU seconds are what a timing test asserts instead of wall time.

Why: the machine the tests run on is shared (load 10 on two cores is common), and wall
time scales with the load while the CPU a piece of work costs barely moves. A test that
must fail on a regression (a quadratic parser, a busy loop) but not on a busy machine
bounds CPU seconds, and keeps a generous wall-clock bound only for what CPU time cannot
see (a fixed sleep, a lost wake-up).
"""

from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and every descendant still alive, plus what its
    reaped children used (counted by the kernel in ``children_user``/``children_system``)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
        except psutil.NoSuchProcess:  # ended between the listing and the read
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def peak_rss_kb(pid: int) -> int:
    """The most memory ``pid`` has had resident (``VmHWM``, KiB): what a test of a bounded
    buffer compares before and after the work, since the current RSS may already have fallen."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")
