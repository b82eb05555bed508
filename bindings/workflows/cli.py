"""``edgelet workflows``: wrangler's workflow commands against the local platform.

Commands that change something talk to a running ``edgelet dev`` (``--port``). The ones
that only look (``list``, ``describe``, ``instances list``, ``instances describe``) read the
state folder directly (``--persist-to``) when no ``dev`` answers, so a crashed or stopped
platform can still be inspected.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from edgelet.bindings.workflows.schema import LIVE as _LIVE
from edgelet.client import ApiClient, loads_arg, offline_notice, persist_to_option, port_options, print_table
from edgelet.progress import Bar, progress_bar

_STATUSES = ["queued", "running", "paused", "waitingForPause", "waiting", "errored", "terminated",
             "complete", "unknown"]
#: instances `check` asks for per request, and from how many on it shows a progress bar
CHECK_PAGE = 100
CHECK_PROGRESS_FROM = 50


class Offline:
    """Reads ``<persist-to>/workflows.sqlite3`` when no ``edgelet dev`` runs."""

    def __init__(self, folder: Path) -> None:
        from edgelet.bindings.workflows.schema import DATABASE, SCHEMA
        from edgelet.state import StateError, database_path, open_database

        path = database_path(folder, DATABASE)
        if not path.exists():
            raise click.ClickException(
                f"no `edgelet dev` answers and there is no workflow state at {path}; start "
                f"`edgelet dev` or pass --persist-to (and --port) for the right platform")
        try:
            self.conn = open_database(path, read_only=True, schema=SCHEMA)
        except StateError as exc:
            raise click.ClickException(str(exc)) from None

    def workflows(self) -> list[dict[str, Any]]:
        from edgelet.bindings.workflows import views
        return [views.workflow_summary(self.conn, n) for n in views.known_workflows(self.conn)]

    def workflow(self, name: str) -> dict[str, Any]:
        from edgelet.bindings.workflows import views
        if name not in views.known_workflows(self.conn):
            raise click.ClickException(f"unknown workflow '{name}' in the state folder")
        return views.workflow_summary(self.conn, name)

    def instances(self, name: str, status: str | None, page: int,
                  per_page: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        from edgelet.bindings.workflows import views
        return views.list_instances(self.conn, name, status, page, per_page)

    def describe(self, name: str, instance_id: str) -> dict[str, Any]:
        from edgelet.bindings.workflows import views
        if instance_id == "latest":
            instance_id = views.latest_id(self.conn, name) or instance_id
        try:
            return views.describe(self.conn, name, instance_id)
        except LookupError as exc:
            raise click.ClickException(str(exc)) from None


class Online:
    """Through the control API of a running ``edgelet dev``."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def workflows(self) -> list[dict[str, Any]]:
        return self.client.get("/workflows")

    def workflow(self, name: str) -> dict[str, Any]:
        return self.client.get(f"/workflows/{_q(name)}")

    def instances(self, name: str, status: str | None, page: int,
                  per_page: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        return self.client.get_page(f"/workflows/{_q(name)}/instances", status=status, page=page,
                                    per_page=per_page)

    def describe(self, name: str, instance_id: str) -> dict[str, Any]:
        return self.client.get(f"/workflows/{_q(name)}/instances/{_q(instance_id)}")


def _q(part: str) -> str:
    return quote(part, safe="")


def _running(client: ApiClient) -> bool:
    try:
        httpx.get(client.base + "/workers", headers=client.headers, timeout=3)
        return True
    except httpx.HTTPError:
        return False


def reader(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a read-only command a backend: the running dev, else the state folder."""

    @persist_to_option("State folder, read when no dev runs.")
    @port_options
    @functools.wraps(fn)
    def wrapper(*args: Any, client: ApiClient, persist_to: str, **kwargs: Any) -> Any:
        if _running(client):
            backend: Any = Online(client)
        else:
            backend = Offline(Path(persist_to))
            offline_notice(client.port, client.ip, Path(persist_to).resolve())
        return fn(*args, backend=backend, **kwargs)

    return wrapper


@click.group("workflows")
def workflows_group() -> None:
    """Workflows: list them, trigger instances, look inside and steer them."""


@workflows_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reader
def list_cmd(backend: Any, as_json: bool) -> None:
    """Every workflow with its instance counts."""
    rows = backend.workflows()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table([{"name": r["name"], "class": r["class_name"], "script": r["script_name"],
                  **{s: r["instances"].get(s, 0) for s in ("queued", "running", "waiting", "paused",
                                                            "complete", "errored", "terminated")}}
                 for r in rows],
                ["name", "class", "script", "queued", "running", "waiting", "paused", "complete",
                 "errored", "terminated"])


@workflows_group.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reader
def describe_cmd(backend: Any, name: str, as_json: bool) -> None:
    """One workflow: its class, script and instances per status."""
    info = backend.workflow(name)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"Workflow:  {info['name']}")
    click.echo(f"Class:     {info['class_name']} (Worker {info['script_name']})")
    click.echo(f"Last run:  {info.get('triggered_on') or '-'}")
    counts = ", ".join(f"{k} {v}" for k, v in info["instances"].items() if v) or "none"
    click.echo(f"Instances: {counts}")


@workflows_group.command("check")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@port_options
def check_cmd(client: ApiClient, name: str | None, as_json: bool) -> None:
    """Replay every unfinished instance (of NAME, or of every workflow) against the current
    code without running a step; exit 1 when one would diverge."""
    from edgelet.bindings.workflows.checker import describe_report
    if not _running(client):
        raise click.ClickException("the replay check runs the current code: start `edgelet dev` first "
                                   "(or pass --port of the one that runs)")
    found = [client.get(f"/workflows/{_q(name)}")] if name else client.get("/workflows")
    unfinished = sum(w["instances"].get(s, 0) for w in found for s in _LIVE)
    with progress_bar("Checking unfinished instances", unfinished,
                      when=unfinished >= CHECK_PROGRESS_FROM) as bar:
        results = [_check_pages(client, w["name"], bar) for w in found]
    if as_json:
        click.echo(json.dumps(results, indent=2))
    else:
        for result in results:
            for r in result["instances"]:
                click.echo(describe_report(result["workflow"], r))
            click.echo(f"{result['workflow']}: {result['checked']} unfinished instance(s) checked, "
                       f"{result['diverged']} would diverge")
    if any(r["diverged"] for r in results):
        raise SystemExit(1)


def _check_pages(client: ApiClient, name: str, bar: Bar) -> dict[str, Any]:
    """One workflow's check, a page of instances per request (the bar moves with each)."""
    merged: dict[str, Any] = {"workflow": name, "checked": 0, "diverged": 0, "instances": []}
    after = 0
    while True:
        bar.update(description=f"Checking {name}")
        page = client.post(f"/workflows/{_q(name)}/check", {"after": after, "limit": CHECK_PAGE})
        merged["checked"] += page["checked"]
        merged["diverged"] += page["diverged"]
        merged["instances"] += page["instances"]
        bar.advance(page["checked"])
        if page.get("next") is None:
            return merged
        after = page["next"]


@workflows_group.command("trigger")
@click.argument("name")
@click.argument("params", required=False)
@click.option("--id", "instance_id", default=None, help="Instance id (default: a new UUID).")
@port_options
def trigger_cmd(client: ApiClient, name: str, params: str | None, instance_id: str | None) -> None:
    """Create an instance of NAME with PARAMS (JSON)."""
    body: dict[str, Any] = {}
    if params:
        try:
            body["params"] = loads_arg(params)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="PARAMS") from None
    if instance_id:
        body["instance_id"] = instance_id
    created = client.post(f"/workflows/{_q(name)}/instances", body)
    click.echo(f"Created instance {created['id']} of workflow {name} ({created['status']})")


@workflows_group.group("instances")
def instances_group() -> None:
    """Instances of one workflow."""


@instances_group.command("list")
@click.argument("name")
@click.option("--status", type=click.Choice(_STATUSES), default=None, help="Only this status.")
@click.option("--page", default=1, show_default=True, type=int)
@click.option("--per-page", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@reader
def instances_list(backend: Any, name: str, status: str | None, page: int, per_page: int,
                   as_json: bool) -> None:
    """Instances of NAME, newest first."""
    rows, info = backend.instances(name, status, page, per_page)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table([{"id": r["id"], "status": r["status"], "created": _short(r.get("created_on")),
                      "started": _short(r.get("started_on")), "ended": _short(r.get("ended_on"))}
                     for r in rows], ["id", "status", "created", "started", "ended"])
    _page_note(info, len(rows), "instances")


def _page_note(info: dict[str, Any] | None, shown: int, what: str) -> None:
    """On stderr, when a listing has more pages than the one shown: which one, and how to get
    the next (a table of exactly --per-page rows read as if it were all of them)."""
    if not info or not info.get("total_count"):
        return
    page, per_page, total = int(info["page"]), int(info["per_page"]), int(info["total_count"])
    if total <= per_page and page == 1:
        return
    first = (page - 1) * per_page + 1
    note = f"{what} {first}-{first + shown - 1} of {total}" if shown else f"no {what} on page {page} ({total} in all)"
    if page * per_page < total:
        note += f"; pass --page {page + 1} for the next {min(per_page, total - page * per_page)}"
    click.echo(note, err=True)


@instances_group.command("describe")
@click.argument("name")
@click.argument("instance_id", metavar="ID|latest")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--width", default=40, show_default=True, help="Characters of output shown per step.")
@reader
def instances_describe(backend: Any, name: str, instance_id: str, as_json: bool, width: int) -> None:
    """An instance and a table of its steps with timings, attempts and output."""
    info = backend.describe(name, instance_id)
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"Instance:  {info['id']} ({name})")
    click.echo(f"Status:    {info['status']}" + (f" until {info['wake_at']}" if info.get("wake_at") else "")
               + (f" or event {', '.join(info['waiting_for'])}" if info.get("waiting_for") else ""))
    click.echo(f"Queued:    {info['queued']}   Start: {info['start'] or '-'}   End: {info['end'] or '-'}")
    click.echo(f"Params:    {_trim(info['params'], 100)}")
    if info.get("error"):
        click.echo(f"Error:     {info['error']['name']}: {info['error']['message']}")
    if info["status"] == "complete":
        click.echo(f"Output:    {_trim(info['output'], 100)}")
    rows = []
    for i, s in enumerate(info["steps"], 1):
        if s["type"] == "termination":  # the API's row for `terminate`: when and by whom
            rows.append({"#": i, "type": "termination", "name": f"by {s.get('trigger', {}).get('source', '?')}",
                         "count": "", "start": _short(info.get("end")), "duration": "-",
                         "status": "terminated", "attempts": "", "output": "", "error": ""})
            continue
        attempts = s.get("attempts") or []
        failed = [a for a in attempts if not a["success"]]
        error = s.get("error")
        rows.append({
            "#": i, "type": s["type"], "name": s["name"], "count": s["count"],
            "start": _short(s["start"]), "duration": _duration(s["start"], s["end"]),
            "status": _step_status(s, info["status"]), "attempts": f"{len(attempts)}" + (f" ({len(failed)} failed)"
                                                                          if failed else "") if attempts else "",
            "output": _trim(s.get("output"), width) if s.get("success") and "output" in s else "",
            "error": _trim(f"{error['name']}: {error['message']}", width) if error else ""})
    click.echo("")
    print_table(rows, ["#", "type", "name", "count", "start", "duration", "status", "attempts", "output",
                       "error"])
    if info.get("rollbacks"):
        rollback = info.get("rollback") or {}
        click.echo(f"\nRollbacks ({rollback.get('status', '?')}), in the order they ran:")
        print_table([{"step": r["name"], "count": r["count"], "status": r["status"],
                      "attempts": len(r.get("attempts") or []), "duration": _duration(r["start"], r["end"]),
                      "error": _trim(f"{r['error']['name']}: {r['error']['message']}", width) if r.get("error")
                      else ""} for r in info["rollbacks"]],
                    ["step", "count", "status", "attempts", "duration", "error"])
    failures = [(s, n, a) for s in info["steps"] for n, a in enumerate(s.get("attempts") or [], 1)
                if not a["success"]]
    if failures:
        click.echo("\nFailed attempts:")
        for s, n, a in failures:
            error = a.get("error") or {}
            click.echo(f"  {s['name']} #{s['count']} attempt {n} at {_short(a['start'])} "
                       f"({_duration(a['start'], a['end'])}): {error.get('name')}: "
                       f"{_trim(error.get('message', ''), 200)}")


def _action(command: str, body: Callable[..., dict[str, Any]], help_text: str) -> None:
    @instances_group.command(command, help=help_text)
    @click.argument("name")
    @click.argument("instance_id", metavar="ID")
    @port_options
    def cmd(client: ApiClient, name: str, instance_id: str) -> None:
        if instance_id == "latest":
            instance_id = client.get(f"/workflows/{_q(name)}/instances/latest")["id"]
        result = client.patch(f"/workflows/{_q(name)}/instances/{_q(instance_id)}/status", body())
        click.echo(f"Instance {instance_id} of {name}: {result['status']}")


_action("pause", lambda: {"status": "pause"}, "Pause an instance after its current step.")
_action("resume", lambda: {"status": "resume"}, "Resume a paused instance.")
_action("terminate", lambda: {"status": "terminate"}, "Stop an instance for good.")


@instances_group.command("delete")
@click.argument("name")
@click.argument("instance_ids", metavar="ID...", nargs=-1, required=True)
@port_options
def delete_cmd(client: ApiClient, name: str, instance_ids: tuple[str, ...]) -> None:
    """Delete finished instances (at most 100) and their history."""
    result = client.post(f"/workflows/{_q(name)}/instances/delete", {"ids": list(instance_ids)})
    click.echo(f"Deleted {result['deleted']} instance(s) of {name}")


@instances_group.command("tail")
@click.argument("name")
@click.argument("instance_id", metavar="ID|latest")
@click.option("--cursor", default=None, type=int, help="Start after this eventId.")
@click.option("--filter", "filters", multiple=True, help="Only these event types (or families: step, ...).")
@click.option("--json", "as_json", is_flag=True, help="Print each event as a JSON line.")
@port_options
def tail_cmd(client: ApiClient, name: str, instance_id: str, cursor: int | None, filters: tuple[str, ...],
             as_json: bool) -> None:
    """Stream an instance's events: its history, then live ones until it ends."""
    if instance_id == "latest":
        instance_id = client.get(f"/workflows/{_q(name)}/instances/latest")["id"]
    params: dict[str, Any] = {}
    if cursor is not None:
        params["cursor"] = cursor
    if filters:
        params["filter"] = ",".join(filters)
    url = f"{client.base}/workflows/{_q(name)}/instances/{_q(instance_id)}/subscribe"
    try:
        with httpx.stream("GET", url, params=params, headers=client.headers,
                          timeout=httpx.Timeout(10, read=None)) as resp:
            if resp.status_code != 200:
                resp.read()
                try:
                    errors = resp.json().get("errors") or [{"message": resp.text}]
                except ValueError:
                    errors = [{"message": resp.text}]
                raise click.ClickException(errors[0].get("message", resp.text))
            for line in resp.iter_lines():
                if line.startswith(": edgelet dev is stopping"):
                    click.echo("edgelet dev stopped; tail ends", err=True)
                    return
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                click.echo(json.dumps(event) if as_json else _event_line(event))
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach edgelet dev at {client.base}: {exc}") from None


def _event_line(event: dict[str, Any]) -> str:
    step = event.get("step")
    parts = [f"{event['eventId']:>6}", _short(event["timestamp"]), f"{event['type']:<20}"]
    if step:
        parts.append(f"{step['name']!r} #{step['count']}")
    if event.get("attempt") is not None:
        parts.append(f"attempt {event['attempt']}")
    if event.get("error"):
        parts.append(f"{event['error']['name']}: {event['error']['message']}")
    elif "output" in event:
        parts.append(_trim(event["output"], 80))
    return "  ".join(parts)


@instances_group.command("restart")
@click.argument("name")
@click.argument("instance_id", metavar="ID")
@click.option("--from-step", default=None, help="Keep the results of the steps before this one.")
@port_options
def restart_cmd(client: ApiClient, name: str, instance_id: str, from_step: str | None) -> None:
    """Erase an instance's history (or the part from --from-step on) and run it again."""
    body: dict[str, Any] = {"status": "restart"}
    if from_step is not None:  # an empty one is the server's 400, not a restart from the top
        body["from_step"] = from_step
    result = client.patch(f"/workflows/{_q(name)}/instances/{_q(instance_id)}/status", body)
    click.echo(f"Instance {instance_id} of {name}: {result['status']}")


@instances_group.command("send-event")
@click.argument("name")
@click.argument("instance_id", metavar="ID")
@click.option("--type", "event_type", required=True, help="Event type the instance waits for.")
@click.option("--payload", default=None, help="JSON payload.")
@port_options
def send_event_cmd(client: ApiClient, name: str, instance_id: str, event_type: str,
                   payload: str | None) -> None:
    """Send an event to an instance (for step.wait_for_event)."""
    data: Any = None
    if payload:
        try:
            data = loads_arg(payload)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--payload") from None
    client.post(f"/workflows/{_q(name)}/instances/{_q(instance_id)}/events/{_q(event_type)}", data)
    click.echo(f"Sent event '{event_type}' to instance {instance_id} of {name}")


def _step_status(step: dict[str, Any], instance_status: str) -> str:
    """A step's state in words; an unfinished step of an instance that has ended (it was
    terminated during a sleep, say) no longer waits or runs: it ended with the instance."""
    if step.get("finished"):
        return "ok" if step.get("success") else "failed"
    if instance_status in ("terminated", "errored", "complete"):
        return instance_status if instance_status == "terminated" else "abandoned"
    if step["type"] == "step":
        return "retrying" if step.get("next_attempt") else "running"
    return "waiting"


def _short(stamp: str | None) -> str:
    if not stamp:
        return "-"
    return stamp.replace("T", " ").replace("Z", "")[:23]


def _parse(stamp: str) -> _dt.datetime:
    return _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _duration(start: str | None, end: str | None) -> str:
    if not start or not end:
        return "-"
    seconds = (_parse(end) - _parse(start)).total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _trim(value: Any, width: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"
