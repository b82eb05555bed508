"""``edgelet durable-objects list | objects NS | show NS ID``.

With a running ``edgelet dev`` (``--port``) the commands ask its control API; without one
they read the state folder (``--persist-to``) directly. Offline, stored values are decoded
only when they are plain data (a restricted unpickler: no code from the state folder runs).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import pickle
import socket
import sqlite3
from pathlib import Path
from typing import Any

import click

from edgelet.bindings.durable_objects import schema
from edgelet.client import ApiClient, offline_notice, persist_to_option, print_table
from edgelet.state import Schema, StateError, database_path, open_database

_SAFE_GLOBALS = {
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"),
    ("builtins", "complex"), ("builtins", "slice"), ("builtins", "range"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("collections", "OrderedDict"),
    ("decimal", "Decimal"), ("uuid", "UUID"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name}")


def _decode(raw: bytes) -> dict[str, Any]:
    try:
        value = _SafeUnpickler(io.BytesIO(raw)).load()
    except Exception as exc:
        return {"type": "pickled", "value": f"<a pickled {exc} (start edgelet dev to decode it)>",
                "size": len(raw)}
    try:
        json.dumps(value)
        shown: Any = value
    except (TypeError, ValueError):
        shown = repr(value)
    return {"type": type(value).__name__, "value": shown, "size": len(raw)}


def _when(ms: Any) -> str:
    if ms is None:
        return ""
    return _dt.datetime.fromtimestamp(ms / 1000).isoformat(sep=" ", timespec="seconds")


def _dev_running(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


def _open(path: Path, kind: Schema) -> sqlite3.Connection:
    """A state file opened read-only, its damage or version told as a usage error."""
    try:
        return open_database(path, read_only=True, schema=kind)
    except StateError as exc:
        raise click.ClickException(str(exc)) from None


class _Offline:
    """The state folder read directly (no ``edgelet dev`` running)."""

    def __init__(self, persist_to: str, port: int, ip: str) -> None:
        self.root = Path(persist_to)
        path = database_path(self.root, schema.INDEX_DATABASE)
        if not path.exists():
            raise click.ClickException(
                f"no `edgelet dev` answers and there is no Durable Object state in {self.root}; "
                f"start `edgelet dev` or pass --persist-to / --port")
        self.conn = _open(path, schema.INDEX_SCHEMA)
        self.config = self._config()
        offline_notice(port, ip, self.root.resolve())

    @staticmethod
    def _config() -> Any:
        try:
            from edgelet.bindings.durable_objects.plugin import build_namespaces
            from edgelet.config import load_config
            return build_namespaces(load_config(None, cwd=Path.cwd()))
        except Exception:
            return {}

    def resolve(self, ref: str) -> str:
        names = {r[0] for r in self.conn.execute("SELECT DISTINCT namespace FROM objects")}
        names.update(self.config)
        if ref in names:
            return ref
        hits = [n for n, ns in self.config.items()
                if ref in (ns.id, ns.class_name) or any(b == ref for _, b in ns.bindings)]
        if len(hits) == 1:
            return hits[0]
        raise click.ClickException(f"no Durable Object namespace {ref!r}; namespaces: "
                                   f"{', '.join(sorted(names)) or 'none'}")

    def namespaces(self) -> list[dict[str, Any]]:
        counts = dict(self.conn.execute("SELECT namespace, count(*) FROM objects GROUP BY namespace"))
        out = []
        for name in sorted(set(counts) | set(self.config)):
            ns = self.config.get(name)
            row = ns.describe() if ns else {"name": name, "class": None, "script": None, "binding": None}
            out.append({**row, "objects": counts.get(name, 0)})
        return out

    def objects(self, ns: str, limit: int) -> list[dict[str, Any]]:
        from edgelet.bindings.durable_objects.index import row_dict
        rows = self.conn.execute(
            "SELECT id, name, created_ms, last_used_ms, alarm_ms FROM objects WHERE namespace = ? "
            "ORDER BY id LIMIT ?", (ns, limit))
        return [row_dict(r) for r in rows]

    def show(self, ns: str, ref: str) -> dict[str, Any]:
        from edgelet.bindings.durable_objects import ids
        from edgelet.bindings.durable_objects.index import row_dict
        id_hex = ref.lower()
        if not ids.is_valid_id(id_hex):
            config_ns = self.config.get(ns)
            if config_ns is None:
                raise click.ClickException(f"{ref!r} is not an object id (64 hex characters); "
                                           f"names can be used only from the app's folder")
            id_hex = ids.id_from_name(config_ns.id, ref)
        row = self.conn.execute(
            "SELECT id, name, created_ms, last_used_ms, alarm_ms FROM objects "
            "WHERE namespace = ? AND id = ?", (ns, id_hex)).fetchone()
        if row is None:
            raise click.ClickException(f"no Durable Object {ref} in namespace {ns}")
        result: dict[str, Any] = {**row_dict(row), "namespace": ns, "keys": [], "tables": []}
        path = schema.object_path(schema.objects_root(self.root), ns, id_hex)
        if path.exists():
            db = _open(path, schema.OBJECT_SCHEMA)
            try:
                result["keys"] = [{"key": k, **_decode(v)} for k, v in db.execute(
                    f"SELECT key, value FROM {schema.KV_TABLE} ORDER BY key LIMIT 1000")]
                for (name,) in db.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                        "'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'"):
                    quoted = '"' + name.replace('"', '""') + '"'
                    result["tables"].append({"name": name, "rows": db.execute(
                        f"SELECT count(*) FROM {quoted}").fetchone()[0]})
            except sqlite3.Error:
                pass
            finally:
                db.close()
        return result


def _options(fn: Any) -> Any:
    fn = click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")(fn)
    fn = persist_to_option("State folder, read when no `edgelet dev` runs.")(fn)
    fn = click.option("--ip", default="127.0.0.1", show_default=True)(fn)
    fn = click.option("--port", default=8787, show_default=True, type=int, envvar="EDGELET_PORT",
                      help="Port of `edgelet dev`.")(fn)
    return fn


@click.group("durable-objects")
def group() -> None:
    """Inspect Durable Object namespaces, objects and their storage."""


@group.command("list")
@_options
def list_namespaces(port: int, ip: str, persist_to: str, as_json: bool) -> None:
    """Every namespace: its class, script, bindings and number of objects."""
    if _dev_running(ip, port):
        rows = ApiClient(port, ip).get("/durable_objects/namespaces")
    else:
        rows = _Offline(persist_to, port, ip).namespaces()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(rows, ["name", "binding", "class", "script", "objects"])


@group.command("objects")
@click.argument("namespace")
@click.option("--limit", default=1000, show_default=True, type=int)
@_options
def list_objects(namespace: str, limit: int, port: int, ip: str, persist_to: str, as_json: bool) -> None:
    """The objects of NAMESPACE (name, id, class or binding): id, name, last use, alarm."""
    if _dev_running(ip, port):
        rows = ApiClient(port, ip).get(f"/durable_objects/namespaces/{namespace}/objects", limit=limit)
    else:
        offline = _Offline(persist_to, port, ip)
        rows = offline.objects(offline.resolve(namespace), limit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table([{**r, "last_used": _when(r["last_used"]), "alarm": _when(r["alarm"])} for r in rows],
                ["id", "name", "last_used", "alarm"])


@group.command("show")
@click.argument("namespace")
@click.argument("object_id", metavar="ID")
@_options
def show_object(namespace: str, object_id: str, port: int, ip: str, persist_to: str,
                as_json: bool) -> None:
    """One object's stored keys (with values) and SQL tables; ID may be its name."""
    if _dev_running(ip, port):
        obj = ApiClient(port, ip).get(f"/durable_objects/namespaces/{namespace}/objects/{object_id}")
    else:
        offline = _Offline(persist_to, port, ip)
        obj = offline.show(offline.resolve(namespace), object_id)
    if as_json:
        click.echo(json.dumps(obj, indent=2))
        return
    click.echo(f"id:        {obj['id']}")
    click.echo(f"name:      {obj.get('name') or ''}")
    click.echo(f"last used: {_when(obj.get('last_used'))}")
    click.echo(f"alarm:     {_when(obj.get('alarm')) or 'none'}")
    click.echo("")
    click.echo("keys:")
    print_table([{"key": k["key"], "type": k["type"], "value": json.dumps(k["value"])
                  if not isinstance(k["value"], str) else k["value"]} for k in obj.get("keys", [])],
                ["key", "type", "value"])
    click.echo("")
    click.echo("SQL tables:")
    print_table(obj.get("tables", []), ["name", "rows"])
