"""Read-only views of the workflow tables, in Cloudflare's REST shapes.

Used by the running engine (control API, test handles) and by the CLI when no ``edgelet
dev`` runs (it opens the state folder's database directly), so both show the same thing.
"""

from __future__ import annotations

import datetime as _dt
import json
import sqlite3
from typing import Any

from edgelet.bindings.workflows import codec
from edgelet.bindings.workflows.rules import REDACTED
from edgelet.bindings.workflows.schema import STATUSES

_INSTANCE_COLS = ("seq, workflow, id, status, generation, params, trigger, created, started, ended, "
                  "modified, wake_at, waiting_for, output, error_name, error_message")
#: the column names of _INSTANCE_COLS (instance_row runs on every status() poll)
_INSTANCE_NAMES = tuple(c.strip() for c in _INSTANCE_COLS.split(","))
_INSTANCE_SQL = f"SELECT {_INSTANCE_COLS} FROM instances WHERE workflow = ? AND id = ?"


def iso(t: float | None) -> str | None:
    """Cloudflare's timestamp form: ISO 8601 in UTC with milliseconds and a Z."""
    if t is None:
        return None
    stamp = _dt.datetime.fromtimestamp(t, tz=_dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def instance_row(conn: sqlite3.Connection, workflow: str, instance_id: str) -> dict[str, Any] | None:
    row = conn.execute(_INSTANCE_SQL, (workflow, instance_id)).fetchone()
    if row is None:
        return None
    return dict(zip(_INSTANCE_NAMES, row, strict=True))


def latest_id(conn: sqlite3.Connection, workflow: str) -> str | None:
    row = conn.execute("SELECT id FROM instances WHERE workflow = ? ORDER BY seq DESC LIMIT 1",
                       (workflow,)).fetchone()
    return row[0] if row else None


def error_of(row: dict[str, Any]) -> dict[str, str] | None:
    if row.get("error_name") is None:
        return None
    return {"name": row["error_name"], "message": row["error_message"] or ""}


def counts(conn: sqlite3.Connection, workflow: str) -> dict[str, int]:
    found = dict(conn.execute("SELECT status, COUNT(*) FROM instances WHERE workflow = ? GROUP BY status",
                              (workflow,)).fetchall())
    return {s: int(found.get(s, 0)) for s in STATUSES}


def workflow_summary(conn: sqlite3.Connection, name: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """``GET /workflows/{name}``: the workflow and how many instances it has per status."""
    if meta is None:
        row = conn.execute("SELECT class_name, script_name, created, modified FROM workflows WHERE name = ?",
                           (name,)).fetchone()
        meta = dict(zip(("class_name", "script_name", "created", "modified"), row, strict=False)) if row else {}
    last = conn.execute("SELECT MAX(created) FROM instances WHERE workflow = ?", (name,)).fetchone()[0]
    return {"id": name, "name": name, "class_name": meta.get("class_name"),
            "script_name": meta.get("script_name"), "created_on": iso(meta.get("created")),
            "modified_on": iso(meta.get("modified")), "triggered_on": iso(last),
            "instances": counts(conn, name)}


def known_workflows(conn: sqlite3.Connection) -> list[str]:
    names = {r[0] for r in conn.execute("SELECT name FROM workflows")}
    return sorted(names)


def list_instances(conn: sqlite3.Connection, workflow: str, status: str | None, page: int,
                   per_page: int, id_prefix: str | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Newest first, paged; returns (rows, result_info). ``id_prefix`` keeps the instances
    whose id starts with it (a range on the ``(workflow, id)`` index, not a scan)."""
    if status is not None and status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
    if page < 1 or not 1 <= per_page <= 1000:
        raise ValueError("page must be >= 1 and per_page between 1 and 1000")
    where, args = "workflow = ?", [workflow]
    if status:
        where += " AND status = ?"
        args.append(status)
    if id_prefix:
        where += " AND id >= ? AND id < ?"
        args += [id_prefix, id_prefix + "\U0010ffff"]
    total = conn.execute(f"SELECT COUNT(*) FROM instances WHERE {where}", args).fetchone()[0]
    rows = conn.execute(
        f"SELECT id, status, created, modified, started, ended FROM instances WHERE {where} "
        f"ORDER BY seq DESC LIMIT ? OFFSET ?", [*args, per_page, (page - 1) * per_page]).fetchall()
    result = [{"id": r[0], "status": r[1], "created_on": iso(r[2]), "modified_on": iso(r[3]),
               "started_on": iso(r[4]), "ended_on": iso(r[5]), "workflow_id": workflow}
              for r in rows]
    return result, {"page": page, "per_page": per_page, "count": len(result), "total_count": total}


INTERRUPTED = {"name": "AttemptInterrupted",
               "message": "the platform stopped (a crash or kill -9) during this attempt; it ran again"}
#: an attempt cut off by its isolate's death while the platform ran on (``boot`` 0)
INTERRUPTED_ISOLATE = {"name": "AttemptInterrupted",
                       "message": "the Worker's isolate died (a crash, a limit or kill -9) during this "
                                  "attempt; it ran again"}


def steps(conn: sqlite3.Connection, seq: int, boot: float | None = None) -> list[dict[str, Any]]:
    """The history in order, each step with its attempts, in the shape ``describe`` shows.
    Attempts cut off by a crash (in flight under another platform run than ``boot``) are
    listed with ``interrupted: true``."""
    attempts: dict[tuple[str, int], list[dict[str, Any]]] = {}
    timed: dict[tuple[str, int], list[tuple[float, dict[str, Any]]]] = {}
    for name, count, _attempt, started, ended, success, ename, emsg in conn.execute(
            "SELECT name, count, attempt, started, ended, success, error_name, error_message "
            "FROM attempts WHERE instance = ? ORDER BY name, count, attempt", (seq,)):
        timed.setdefault((name, count), []).append((started, {
            "start": iso(started), "end": iso(ended), "success": bool(success),
            "error": {"name": ename, "message": emsg or ""} if ename is not None else None}))
    try:
        cut = conn.execute("SELECT name, count, started, boot FROM attempts_in_flight WHERE instance = ? "
                           "AND boot != ?", (seq, -1.0 if boot is None else boot)).fetchall()
    except sqlite3.OperationalError:  # a state folder from before version 4 (read-only CLI)
        cut = []
    stored = set(timed)
    for name, count, started, by in cut:
        timed.setdefault((name, count), []).append((started, {
            "start": iso(started), "end": None, "success": False, "interrupted": True,
            "error": INTERRUPTED_ISOLATE if by == 0 else INTERRUPTED}))
    rows = conn.execute(
        "SELECT name, count, kind, state, value, error_name, error_message, config, started, "
        "ended, wake_at FROM steps WHERE instance = ? ORDER BY seq", (seq,)).fetchall()
    for name, count, kind, state, _v, _en, _em, _c, started, ended, _w in rows:
        if kind == "step" and state == "ok" and (name, count) not in stored:
            # a step that succeeded at its first attempt stores no attempt row: the
            # attempt is the step's own span (see recorder.Recorder._record_attempts)
            timed.setdefault((name, count), []).append((started, {
                "start": iso(started), "end": iso(ended), "success": True, "error": None}))
    for key, entries in timed.items():
        attempts[key] = [e for _, e in sorted(entries, key=lambda t: t[0])] if len(entries) > 1 else [entries[0][1]]
    out: list[dict[str, Any]] = []
    for name, count, kind, state, value, ename, emsg, config, started, ended, wake_at in rows:
        finished = state in ("ok", "failed")
        error = {"name": ename, "message": emsg or ""} if ename is not None and state == "failed" else None
        entry: dict[str, Any] = {"type": kind, "name": name, "count": count, "start": iso(started),
                                 "end": iso(ended), "success": (state == "ok") if finished else None,
                                 "finished": finished, "error": error}
        if kind == "step":
            entry["attempts"] = attempts.get((name, count), [])
            entry["config"] = json.loads(config) if config else None
            if state != "ok":
                entry["output"] = None
            elif entry["config"] and entry["config"].get("sensitive") == "output":
                entry["output"] = REDACTED  # stored and replayed, never shown
            else:
                entry["output"] = codec.to_json(codec.decode(value))
            if state == "retrying":
                entry["next_attempt"] = iso(wake_at)
        elif kind == "waitForEvent":
            entry["output"] = codec.to_json(codec.decode(value)) if state == "ok" else None
            entry["config"] = json.loads(config) if config else None
            if state == "pending":
                entry["timeout_at"] = iso(wake_at)
        else:
            entry["until"] = iso(wake_at)
        out.append(entry)
    return out


def rollbacks(conn: sqlite3.Connection, seq: int) -> list[dict[str, Any]]:
    """The rollbacks that ran (in the order they ran), each with its attempts."""
    try:
        rows = conn.execute("SELECT name, count, state, error_name, error_message, config, started, ended, "
                            "wake_at FROM rollbacks WHERE instance = ? ORDER BY seq", (seq,)).fetchall()
    except sqlite3.OperationalError:  # a state folder from before rollbacks (read-only CLI)
        return []
    if not rows:
        return []
    attempts: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for name, count, started, ended, success, ename, emsg in conn.execute(
            "SELECT name, count, started, ended, success, error_name, error_message FROM rollback_attempts "
            "WHERE instance = ? ORDER BY name, count, attempt", (seq,)):
        attempts.setdefault((name, count), []).append({
            "start": iso(started), "end": iso(ended), "success": bool(success),
            "error": {"name": ename, "message": emsg or ""} if ename is not None else None})
    return [{"type": "rollback", "name": name, "count": count, "status": state, "start": iso(started),
             "end": iso(ended), "error": {"name": ename, "message": emsg or ""} if state == "failed" else None,
             "attempts": attempts.get((name, count), []), "config": json.loads(config) if config else None,
             **({"next_attempt": iso(wake_at)} if state == "retrying" else {})}
            for name, count, state, ename, emsg, config, started, ended, wake_at in rows]


def status_info(conn: sqlite3.Connection, workflow: str, instance_id: str) -> dict[str, Any] | None:
    """``status()`` as the wire carries it: ``{status, error, output}`` (``output`` still
    encoded) plus ``rollback`` when one ran; None when there is no such instance. Read by
    the host (``Engine.status``) and by an isolate holding the file (``local.py``)."""
    row = instance_row(conn, workflow, instance_id)
    if row is None:
        return None
    info = {"status": row["status"], "error": error_of(row), "output": row["output"]}
    rollback = rollback_summary(conn, row["seq"], row["status"])
    if rollback is not None:
        info["rollback"] = rollback
    return info


def rollback_summary(conn: sqlite3.Connection, seq: int, status: str) -> dict[str, Any] | None:
    """``status().rollback``: ``{status: running | complete | failed, steps: [...]}``, or None
    when no rollback ran."""
    ran = rollbacks(conn, seq)
    if not ran:
        return None
    if status not in ("complete", "errored", "terminated"):
        overall = "running"
    else:
        overall = "failed" if any(r["status"] == "failed" for r in ran) else "complete"
    return {"status": overall, "steps": [{"name": r["name"], "count": r["count"], "status": r["status"],
                                          "error": r["error"]} for r in ran]}


def describe(conn: sqlite3.Connection, workflow: str, instance_id: str,
             boot: float | None = None) -> dict[str, Any]:
    """``GET .../instances/{id}``: status, error, output, params, times and the steps."""
    row = instance_row(conn, workflow, instance_id)
    if row is None:
        raise LookupError(f"workflow '{workflow}' has no instance '{instance_id}'")
    history = steps(conn, row["seq"], boot)
    if row["status"] == "terminated":
        history.append({"type": "termination", "trigger": {"source": "api"}})
    status = row["status"]
    return {
        "id": row["id"], "status": status, "error": error_of(row),
        "output": codec.to_json(codec.decode(row["output"])),
        "params": codec.to_json(codec.decode(row["params"])),
        "queued": iso(row["created"]), "start": iso(row["started"]), "end": iso(row["ended"]),
        "success": (status == "complete") if status in ("complete", "errored", "terminated") else None,
        "trigger": {"source": row["trigger"]}, "wake_at": iso(row["wake_at"]),
        "waiting_for": json.loads(row["waiting_for"]) if row["waiting_for"] else [],
        "steps": history,
        "rollback": rollback_summary(conn, row["seq"], status),
        "rollbacks": rollbacks(conn, row["seq"]),
    }
