"""Side-by-side benchmarks: the same workloads on edgelet and on its peers, in one run.

    python -m bench [--quick] [--rounds N] [--only hello,kv,...] [--no-write] [--no-scale]
    python bench/run.py ...                     (the same)

Miniflare (JavaScript on workerd) is the peer for HTTP, KV, Durable Objects, Queues and
Workflows; DBOS Transact (Python, SQLite) for durable steps. Peers are installed into
bench/.peers/ by bench/setup_peers.sh, which this runner calls. Prints a table and writes
its own section of bench/RESULTS.md. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
if str(BENCH) not in sys.path:
    sys.path.insert(0, str(BENCH))

from harness import dbos, machine, report, scale  # noqa: E402
from harness.pairs import PAIRS, Pair, Settings, describe  # noqa: E402
from harness.procs import EdgeletServer, MiniflareServer, PeakRSS, ROOT, StartError, UvicornServer, state_folder  # noqa: E402
from harness.results import Results  # noqa: E402

RESULTS_MD = BENCH / "RESULTS.md"
ALL = list(dict.fromkeys(p.app for p in PAIRS)) + ["dbos"]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def setup_peers(peers: list[str]) -> dict[str, str]:
    """Install the peers asked for; peer -> reason for those that could not be installed."""
    if not peers:
        return {}
    log(f"setting up peers ({', '.join(peers)}) with bench/setup_peers.sh")
    proc = subprocess.run(["bash", str(BENCH / "setup_peers.sh"), *peers], capture_output=True, text=True,
                          timeout=900)
    failed: dict[str, str] = {}
    for line in proc.stderr.strip().splitlines():
        name, _, reason = line.partition(": ")
        if name in peers:
            failed[name] = reason or line
    if proc.returncode != 0 and not failed:
        failed = {p: f"bench/setup_peers.sh exited {proc.returncode}" for p in peers}
    for name, reason in failed.items():
        log(f"{name} unavailable: {reason}")
    return failed


def plugin_missing(kind: str | None) -> str | None:
    if kind and not (ROOT / "bindings" / kind / "plugin.py").exists():
        return f"edgelet has no {kind} binding yet (bindings/{kind}/plugin.py is missing)"
    return None


def start(side: str, pair: Pair, state: Path):
    if side == "edgelet":
        return EdgeletServer(pair.app, state, env=pair.env)
    return UvicornServer(pair.app, state) if side == "uvicorn" else MiniflareServer(pair.app, state)


def run_pair(pair: Pair, s: Settings, results: Results, peer_skip: str | None) -> None:
    rows = [[results.row(m, describe(m.label, s), pair.peer) for m in step.measures] for step in pair.steps]
    skip = {"edgelet": plugin_missing(pair.needs), pair.peer: peer_skip}
    for side, reason in skip.items():
        if reason:
            for row in (r for step_rows in rows for r in step_rows):
                row.cell(side).skipped = reason
    for rnd in range(s.rounds):
        for side in ("edgelet", pair.peer):  # alternating: A B A B ...
            if skip[side]:
                continue
            with state_folder(f"{pair.app}-{side}") as state:
                try:
                    server = start(side, pair, state)
                except StartError as exc:
                    log(f"{pair.app} round {rnd + 1}: {side} did not start: {exc}")
                    skip[side] = str(exc)
                    for row in (r for step_rows in rows for r in step_rows):
                        row.cell(side).skipped = str(exc)
                    continue
                try:
                    for step, step_rows in zip(pair.steps, rows):
                        with PeakRSS(server.pid) as mem:
                            try:
                                figures = asyncio.run(step.run(server.url, s, server.pid) if step.with_pid  # type: ignore[call-arg]
                                                      else step.run(server.url, s))  # type: ignore[call-arg]
                            except Exception as exc:  # a failed round is reported, the run goes on
                                figures = None
                                error = str(exc) if type(exc).__name__ == "LoadError" \
                                    else f"{type(exc).__name__}: {exc}"
                                if server.output_tail():
                                    error += f" (server's last output: {server.output_tail()})"
                        for row in step_rows:
                            cell = row.cell(side)
                            if figures is None:
                                cell.errors.append(error)
                            else:
                                cell.values.append(figures[row.measure.key])
                                cell.rss_mb.append(mem.peak_mb)
                        shown = ", ".join(f"{r.measure.key}={figures[r.measure.key]:,.2f}" for r in step_rows) \
                            if figures else f"failed: {error}"
                        log(f"{pair.app} round {rnd + 1}/{s.rounds} {side}: {shown} "
                            f"(peak RSS {mem.peak_mb:,.0f} MB)")
                finally:
                    server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="check the harness: 1 round, short runs (< 2 min)")
    parser.add_argument("--rounds", type=int, help="rounds per pair (default 1 quick, 3 full; at least 3 in full)")
    parser.add_argument("--only", help=f"comma-separated subset of: {', '.join(ALL)}, scale")
    parser.add_argument("--no-write", action="store_true", help="print the table only; leave RESULTS.md alone")
    parser.add_argument("--write", action="store_true", help="write RESULTS.md even over full-mode figures")
    parser.add_argument("--no-scale", action="store_true", help="skip the edgelet-alone scale runs (full mode)")
    parser.add_argument("--scale-fraction", type=float, default=1.0,
                        help="run the scale workloads at this fraction of their size (to try them out)")
    args = parser.parse_args(argv)

    s = Settings.quick() if args.quick else Settings.full()
    if args.rounds:
        if not args.quick and args.rounds < 3:
            parser.error("full mode runs at least 3 rounds per pair; use --quick for fewer")
        s = Settings(**{**s.__dict__, "rounds": args.rounds})
    only = set(args.only.split(",")) if args.only else set(ALL) | ({"scale"} if not args.quick else set())
    unknown = only - set(ALL) - {"scale"}
    if unknown:
        parser.error(f"unknown workload(s) {', '.join(sorted(unknown))}; choose from {', '.join(ALL)}, scale")
    if args.no_scale:
        only.discard("scale")

    t0 = time.perf_counter()
    wanted_peers = (["miniflare"] if only & {p.app for p in PAIRS if p.peer == "miniflare"} else []) + (["dbos"] if "dbos" in only else [])
    unavailable = setup_peers(wanted_peers)
    results = Results()
    for pair in PAIRS:
        if pair.app in only:
            log(f"pair: {pair.app} (edgelet vs {pair.peer})")
            run_pair(pair, s, results, unavailable.get(pair.peer))
    if "dbos" in only:
        log("pair: durable steps (edgelet vs DBOS)")
        dbos.run(s, results, unavailable.get("dbos"), log)
    if "scale" in only:
        log("scale runs: edgelet alone")
        scale.run(s, results, log, fraction=args.scale_fraction)
    log(f"done in {time.perf_counter() - t0:.0f} s")

    print()
    report.print_table(results)
    command = "python -m bench" + ("".join(f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])))
    section = report.markdown(results, command=command, mode=s.mode, rounds=s.rounds, machine=machine.machine(),
                              versions=machine.versions(), date=machine.now())
    if args.no_write:
        return 0
    if s.mode == "quick" and report.existing_mode(RESULTS_MD) == "full" and not args.write:
        log("bench/RESULTS.md holds full-mode figures; not replacing them with quick ones (pass --write to)")
        return 0
    report.write(RESULTS_MD, section)
    log(f"wrote the bench/run.py section of {RESULTS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
