"""The table on the terminal and the runner's own section of bench/RESULTS.md."""

from __future__ import annotations

import re
from pathlib import Path

from .results import Cell, Results, Row

START = "<!-- bench/run.py start -->"
END = "<!-- bench/run.py end -->"
PEER_NAMES = {"miniflare": "Miniflare", "dbos": "DBOS", "uvicorn": "bare uvicorn"}


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def figure(cell: Cell, *, short: bool) -> str:
    problem = cell.problem()
    if problem:
        return problem[:60] + "…" if short and len(problem) > 61 else problem
    text = fmt(cell.value)
    if cell.errors:
        text += f" ({len(cell.values)} of {len(cell.values) + len(cell.errors)} rounds)"
    return text


def rss(cell: Cell) -> str:
    return "—" if cell.rss is None else f"{cell.rss:,.0f}"


def ratio(row: Row) -> str:
    r = row.ratio
    return "—" if r is None else f"{r:.2f}×"


HEADERS = ["workload", "unit", "edgelet", "peer", "peer figure", "ratio", "target", "RSS MB (e / p)"]


def table_rows(results: Results, *, short: bool) -> list[list[str]]:
    out = []
    for row in results.rows.values():
        out.append([row.label, row.measure.unit, figure(row.edgelet, short=short),
                    PEER_NAMES.get(row.peer, row.peer), figure(row.other, short=short), ratio(row),
                    row.verdict(), f"{rss(row.edgelet)} / {rss(row.other)}"])
    return out


def print_table(results: Results) -> None:
    rows = [HEADERS, *table_rows(results, short=True)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    for n, r in enumerate(rows):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    if results.scale:
        print("\nedgelet alone, at scale:")
        for s in results.scale:
            print(f"  {s['workload']}: {s['result']}")


def _md(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")


def markdown(results: Results, *, command: str, mode: str, rounds: int, machine: str,
             versions: dict[str, str], date: str) -> str:
    lines = [START, "## Side by side: edgelet, Miniflare and DBOS (bench/run.py)", "",
             f"Command: `{command}` ({mode} mode, {rounds} round{'s' if rounds != 1 else ''} per pair, "
             "sides alternating, medians; see docs/benchmarks.md for what each row does)", "",
             f"- Date: {date}", f"- Machine: {machine}",
             "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
             "Ratios are oriented so that higher favours edgelet: edgelet ÷ peer for throughput, "
             "peer ÷ edgelet for times. RSS is the peak resident set of the platform's whole "
             "process tree during the workload.", "",
             "| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in table_rows(results, short=False):
        lines.append("| " + " | ".join(_md(c) for c in r) + " |")
    if results.scale:
        lines += ["", "### edgelet alone, at scale (no peer runs these locally)", "",
                  "| workload | result |", "|---|---|"]
        lines += [f"| {_md(s['workload'])} | {_md(s['result'])} |" for s in results.scale]
    partial = [(row, side) for row in results.rows.values() for side in ("edgelet", "other")
               if row.cell(side).errors and row.cell(side).values]
    if partial:
        lines += ["", "Rounds that failed:"]
        for row, side in partial:
            name = "edgelet" if side == "edgelet" else PEER_NAMES.get(row.peer, row.peer)
            lines.append(f"- {row.label}, {name}: {row.cell(side).errors[0]}")
    lines.append(END)
    return "\n".join(lines) + "\n"


def existing_mode(path: Path) -> str | None:
    """The mode of the section the runner last wrote, if any."""
    try:
        text = path.read_text()
    except OSError:
        return None
    found = re.search(re.escape(START) + r".*?\((\w+) mode", text, re.S)
    return found.group(1) if found else None


def write(path: Path, section: str) -> None:
    """Replace only the runner's own block (or append it); other sections stay untouched."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
