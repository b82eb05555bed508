"""The durable-steps pair: edgelet's Workflows against DBOS Transact (SQLite system database).

Each side is a fresh process per workload and round (bench/peers/dbos/edgelet_side.py with the
project's Python, dbos_side.py with bench/.peers/dbos-venv's), sides alternating, the whole
process tree's RSS sampled while it runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Callable

from .pairs import Measure, Settings
from .procs import BENCH, PEERS, ROOT, PeakRSS, state_folder
from .results import Results

SCRIPTS = BENCH / "peers" / "dbos"
SEQ_STEPS = 100

SEQ = Measure("dbos.step", "durable steps: sequential 100-step workflow, per-step time", "ms/step",
              higher=False, target=4.0)
CONC = Measure("dbos.conc", "durable steps: {dbos_instances:,} × 10-step workflows at once", "steps/s")


def _side(side: str, workload: str, args: list[str], timeout: float) -> tuple[dict[str, float], float]:
    python = sys.executable if side == "edgelet" else str(PEERS / "dbos-venv" / "bin" / "python")
    script = SCRIPTS / ("edgelet_side.py" if side == "edgelet" else "dbos_side.py")
    with state_folder(f"steps-{side}") as state:
        proc = subprocess.Popen([python, str(script), workload, *args, str(state)], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        with PeakRSS(proc.pid) as mem:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                raise RuntimeError(f"{script.name} {workload} did not finish within {timeout:g} s") from None
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(err.strip().splitlines()[-2:]) or f"exit status {proc.returncode}"
        raise RuntimeError(f"{script.name} {workload} failed: {tail}")
    return json.loads(lines[-1]), mem.peak_mb


def _figure(side: str, measure: Measure, got: dict[str, float]) -> float:
    if side == "edgelet":
        return got["ms_per_step"] if measure is SEQ else got["steps_per_s"]
    if measure is SEQ:
        return min(got["sync_ms_per_step"], got["async_ms_per_step"])
    return max(got["sync_steps_per_s"], got["async_steps_per_s"])


def run(s: Settings, results: Results, peer_skip: str | None, log: Callable[[str], None]) -> None:
    work = [(SEQ, "seq", [str(SEQ_STEPS), str(s.dbos_seq_runs)]),
            (CONC, "concurrent", [str(s.dbos_instances), "10"])]
    skip: dict[str, str | None] = {"edgelet": None, "dbos": peer_skip}
    if not (ROOT / "bindings" / "workflows" / "plugin.py").exists():
        skip["edgelet"] = "edgelet has no workflows binding yet (bindings/workflows/plugin.py is missing)"
    rows = {m.key: results.row(m, m.label.format(**s.__dict__), "dbos") for m, _, _ in work}
    for side, reason in skip.items():
        if reason:
            for row in rows.values():
                row.cell(side).skipped = reason
    for rnd in range(s.rounds):
        for measure, workload, args in work:
            for side in ("edgelet", "dbos"):  # alternating: A B A B ...
                if skip[side]:
                    continue
                cell = rows[measure.key].cell(side)
                try:
                    got, peak = _side(side, workload, args, timeout=max(s.timeout, 120))
                except (RuntimeError, ValueError, KeyError) as exc:
                    log(f"steps round {rnd + 1}/{s.rounds} {side} {workload}: failed: {exc}")
                    if not any(row.cell(side).values for row in rows.values()):
                        # never ran at all: the side is unavailable, not a noisy round
                        skip[side] = str(exc)
                        for row in rows.values():
                            row.cell(side).skipped = str(exc)
                    else:
                        cell.errors.append(str(exc))
                    continue
                cell.values.append(_figure(side, measure, got))
                cell.rss_mb.append(peak)
                log(f"steps round {rnd + 1}/{s.rounds} {side} {workload}: {got} (peak RSS {peak:,.0f} MB)")
