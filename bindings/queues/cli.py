"""``edgelet queues list`` and ``edgelet queues send``: talk to a running ``edgelet dev``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from edgelet.client import ApiClient, loads_arg, offline_notice, persist_to_option, port_options, print_table

_COLUMNS = ["name", "producers", "consumer", "backlog", "in_flight", "oldest_age_s",
            "dead_letter_queue", "dead"]


@click.group("queues")
def queues() -> None:
    """Inspect queues and send messages to them."""


@queues.command("list")
@port_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@persist_to_option("State folder to read when no `edgelet dev` runs.")
def list_queues(client: ApiClient, as_json: bool, persist_to: str) -> None:
    """Every queue: producers, consumer, backlog, in-flight, oldest age, dead-letter queue.

    Without a running `edgelet dev`, the counts are read from the state folder (the
    producers and consumers then come from no config and show as "-").
    """
    try:
        rows = client.get("/queues")
    except click.ClickException as exc:
        if not isinstance(exc.__context__, httpx.ConnectError):
            raise
        rows = _read_state(Path(persist_to), exc)
        offline_notice(client.port, client.ip, Path(persist_to).resolve())
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table: list[dict[str, Any]] = []
    for row in rows:
        shown = dict(row)
        shown["producers"] = ",".join(row.get("producers") or []) or "-"
        shown["consumer"] = row.get("consumer") or "-"
        dlq = row.get("dead_letter_queue")
        shown["dead_letter_queue"] = f"{dlq} ({row.get('dead_letter_backlog', 0)})" if dlq else "-"
        table.append(shown)
    print_table(table, _COLUMNS)


def _read_state(folder: Path, no_dev: click.ClickException) -> list[dict[str, Any]]:
    """Queue counts straight from ``queues.sqlite3`` (read-only), for when dev is not running."""
    import time

    from edgelet.bindings.queues.schema import DATABASE, SCHEMA
    from edgelet.bindings.queues.storage import QueueStore
    from edgelet.state import StateError, database_path, open_database

    path = database_path(folder, DATABASE)
    if not path.exists():
        raise click.ClickException(f"{no_dev.message}; and no queue state at {path} "
                                   f"(pass --persist-to to read another state folder)")
    try:
        conn = open_database(path, read_only=True, schema=SCHEMA)
    except StateError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        store = QueueStore(conn, read_only=True)
        now = time.time()
        rows = [{"name": q, "producers": [], "consumer": None, "dead_letter_queue": None,
                 **store.summary(q, now)} for q in store.queues()]
    finally:
        conn.close()
    click.echo(f"(no `edgelet dev` running; read from {path})", err=True)
    return rows


@queues.command("send")
@port_options
@click.argument("queue")
@click.argument("body")
@click.option("--content-type", type=click.Choice(["json", "text"]), default="json",
              show_default=True, help="json: BODY is parsed as JSON; text: sent as a string.")
@click.option("--delay", type=click.IntRange(0, 43_200), default=None,
              help="Seconds before the message may be delivered.")
def send(client: ApiClient, queue: str, body: str, content_type: str, delay: int | None) -> None:
    """Send BODY to QUEUE (as its consumer would receive it from a producer)."""
    value: Any = body
    if content_type == "json":
        try:
            value = loads_arg(body)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON ({exc}); quote it as JSON (e.g. '\"hello\"') "
                                     f"or pass --content-type text", param_hint="BODY") from None
    payload: dict[str, Any] = {"body": value, "content_type": content_type}
    if delay is not None:
        payload["delay_seconds"] = delay
    result = client.post(f"/queues/{quote(queue, safe='')}/messages", payload)
    click.echo(f"Sent message {result['id']} to queue {queue}"
               + (f" (delivered after {delay} s)" if delay else ""))
