"""The replay check: would the current code still replay each unfinished instance's history?

Why it exists: a workflow's history outlives the code that wrote it. Renaming a completed
step, reordering calls or turning a ``step.do`` into a ``step.sleep`` makes an instance
that is waiting today fail with a non-determinism error when it wakes, maybe days later.
The check finds that at once: it ships each unfinished instance's recorded history to the
Worker's isolate (``workflows.check``), where ``run`` replays against it in a mode that
never runs or records a step, and reports per instance ``ok`` with the next step it would
run, or the divergence naming the step. Nothing in the database changes.

``export``/``replay`` do the same for one history kept as a JSON file, so a test suite can
keep recorded histories as fixtures (as Temporal's Replayer does).
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any

from edgelet.bindings.workflows import schema

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.workflows.runner import Runner
    from edgelet.bindings.workflows.state import State

log = logging.getLogger("edgelet.workflows")

#: instances shipped to the isolate per call
CHUNK = 500
#: the ``format`` of an exported history
FORMAT = "edgelet-workflow-history/1"
_CHECK_TIMEOUT = 600.0


def _b64(value: bytes | None) -> str | None:
    return None if value is None else base64.b64encode(value).decode()


def _unb64(value: str | None) -> bytes | None:
    return None if value is None else base64.b64decode(value)


class Checker:
    """Replay checks and history export/import for one engine."""

    def __init__(self, state: State, runner: Runner) -> None:
        self.state = state
        self.db = state.db
        self.runner = runner

    async def check(self, workflow: str, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        """Check every unfinished instance of ``workflow``; ``{workflow, checked, diverged,
        instances, next}``. With ``limit``, at most that many instances after the cursor
        ``after`` (``next`` is the cursor of the following page, None after the last one), so
        a client can show its progress over many instances."""
        d = self.state.defs[workflow]
        now = self.state.clock.now()
        marks = ",".join("?" * len(schema.LIVE))
        rows = self.db.execute(
            f"SELECT seq, id, status, generation, params, created FROM instances WHERE workflow = ? "
            f"AND status IN ({marks}) AND seq > ? ORDER BY seq LIMIT ?",
            (workflow, *schema.LIVE, after, -1 if limit is None else limit)).fetchall()
        reports: list[dict[str, Any]] = []
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start:start + CHUNK]
            payloads = [self.runner.snapshot(workflow, r[0], r[1:], now) for r in chunk]
            answers = await self.state.host.invoke(d.script, "workflows.check", {"instances": payloads},
                                                   timeout=_CHECK_TIMEOUT)
            for r, answer in zip(chunk, answers, strict=True):
                reports.append({**answer, "status": r[2]})
        diverged = [r for r in reports if not r["ok"]]
        more = limit is not None and len(rows) == limit
        return {"workflow": workflow, "checked": len(reports), "diverged": len(diverged), "instances": reports,
                "next": rows[-1][0] if more else None}

    def export(self, workflow: str, seq: int, row: tuple[Any, ...]) -> dict[str, Any]:
        """One instance's history as JSON (blobs in base64), for :meth:`replay` later."""
        snap = self.runner.snapshot(workflow, seq, row, self.state.clock.now())
        return {"format": FORMAT, "workflow": workflow, "id": snap["id"], "params": _b64(snap["params"]),
                "timestamp": snap["timestamp"],
                "history": [[*h[:4], _b64(h[4]), *h[5:]] for h in snap["history"]],
                "rollbacks": snap["rollbacks"]}

    async def replay(self, history: dict[str, Any]) -> dict[str, Any]:
        """Check an exported history against the current code; the report of :meth:`check`."""
        if not isinstance(history, dict) or history.get("format") != FORMAT:
            raise ValueError(f"not an exported workflow history (expected format {FORMAT!r}); "
                             f"use inst.export() to make one")
        workflow = history.get("workflow")
        d = self.state.defs.get(workflow)  # type: ignore[arg-type]
        if d is None:
            known = ", ".join(sorted(self.state.defs)) or "none"
            raise LookupError(f"the history is of workflow {workflow!r}, which this platform does not "
                              f"define (workflows: {known})")
        payload = {"workflow": workflow, "class": d.class_name, "id": history["id"], "generation": 0,
                   "params": _unb64(history.get("params")), "timestamp": history["timestamp"],
                   "history": [[*h[:4], _unb64(h[4]), *h[5:]] for h in history["history"]],
                   "rollbacks": history.get("rollbacks") or [], "max_steps": d.max_steps}
        answers = await self.state.host.invoke(d.script, "workflows.check", {"instances": [payload]},
                                               timeout=_CHECK_TIMEOUT)
        return dict(answers[0])


def describe_report(workflow: str, r: dict[str, Any]) -> str:
    """One line per instance, as the CLI and ``edgelet dev`` print it."""
    head = f"{workflow}/{r['id']} ({r.get('status', '?')})"
    if not r["ok"]:
        return f"{head}: DIVERGES: {r['error']}"
    nxt = r.get("next")
    if nxt:
        what = f"{nxt['kind']} '{nxt['name']}'" + (f" #{nxt['count']}" if nxt.get("count") else "")
        if nxt.get("waiting"):
            return f"{head}: ok, waits in {what}"
        return f"{head}: ok, next {what}"
    if r.get("outcome") == "errored":
        return f"{head}: ok, replays to the end and would fail: {r['error']}"
    return f"{head}: ok, replays to the end and would complete"
