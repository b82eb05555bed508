"""``edgelet kv``: wrangler's ``kv key`` / ``kv namespace`` commands against local state.

Each command talks to a running ``edgelet dev`` (``--port``/``--ip``) through the control
API; when none answers it opens the state folder (``--persist-to``) directly, so keys can be
inspected or seeded while the platform is down. SQLite's WAL makes either safe at any time.
"""

from __future__ import annotations

import base64
import builtins
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click
import httpx

from edgelet.bindings.kv.limits import key_entry
from edgelet.client import ApiClient, backend_options, loads_arg, print_table

# -- backends --------------------------------------------------------------------------------

class RemoteKV:
    """Through the control API of a running ``edgelet dev``."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client

    def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = httpx.request(method, self.client.base + path, headers=self.client.headers,
                                 timeout=60, **kwargs)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"{method} {path} failed: {exc}") from None
        try:
            data = resp.json()
        except ValueError:
            raise click.ClickException(
                f"{method} {path}: HTTP {resp.status_code}: {resp.text[:200]}") from None
        if not data.get("success"):
            raise click.ClickException("; ".join(
                f"{e.get('message')} (code {e.get('code')})" for e in data.get("errors", []))
                or f"HTTP {resp.status_code}")
        return data

    @staticmethod
    def _path(ns: str, what: str, key: str | None = None) -> str:
        path = f"/kv/{_quote(ns)}/{what}"
        return path if key is None else f"{path}/{_quote(key)}"

    def list(self, ns: str, prefix: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = ""
        while True:
            params = {k: v for k, v in (("prefix", prefix), ("cursor", cursor)) if v}
            data = self._request("GET", self._path(ns, "keys"), params=params)
            out.extend(data["result"])
            cursor = (data.get("result_info") or {}).get("cursor") or ""
            if not cursor:
                return out

    def get(self, ns: str, key: str) -> bytes | None:
        try:
            resp = httpx.get(self.client.base + self._path(ns, "values", key),
                             headers=self.client.headers, timeout=60)
        except httpx.HTTPError as exc:
            raise click.ClickException(f"reading key {key!r} failed: {exc}") from None
        if resp.status_code == 404 and resp.json().get("errors", [{}])[0].get("code") == 10009:
            return None
        data = resp.json()
        if not data.get("success"):
            raise click.ClickException("; ".join(e.get("message", "") for e in data["errors"]))
        if (data.get("result_info") or {}).get("encoding") == "base64":
            return base64.b64decode(data["result"])
        return str(data["result"]).encode("utf-8")

    def put(self, ns: str, key: str, value: bytes, ttl: int | None, expiration: int | None,
            metadata: str | None) -> None:
        params = {k: v for k, v in (("expiration_ttl", ttl), ("expiration", expiration),
                                    ("metadata", metadata)) if v is not None}
        self._request("PUT", self._path(ns, "values", key), content=value, params=params)

    def delete(self, ns: str, key: str) -> None:
        self._request("DELETE", self._path(ns, "values", key))

    def namespaces(self) -> builtins.list[dict[str, Any]]:
        return self._request("GET", "/kv/namespaces")["result"]


class LocalKV:
    """Straight onto ``<persist-to>/kv.sqlite3`` when no ``edgelet dev`` answers."""

    def __init__(self, state_dir: Path, *, create: bool) -> None:
        from edgelet.bindings.kv.schema import DATABASE
        from edgelet.bindings.kv.storage import KVStorage
        from edgelet.clock import Clock
        from edgelet.state import StateError, database_path, open_database

        path = database_path(state_dir, DATABASE)
        if not path.exists() and not create:
            raise click.ClickException(
                f"no `edgelet dev` answers and there is no KV state at {path}; start "
                f"`edgelet dev`, or pass --persist-to (and --port) to point at the right one")
        self.path = path
        self._storage: KVStorage | None = None
        self._open = lambda: KVStorage(open_database(path), Clock())
        self._state_error = StateError
        self.where = f"KV state {path}"

    @property
    def storage(self) -> Any:
        """The store, opened (and for a put, created) on first use: a put whose binding
        does not resolve must leave no state folder or database file behind."""
        if self._storage is None:
            try:
                self._storage = self._open()
            except self._state_error as exc:
                raise click.ClickException(str(exc)) from None
        return self._storage

    def resolve(self, name: str) -> str:
        records: list[tuple[str, str, str]] = []
        try:  # the config here, as it is now, first; then what the last `dev` recorded
            from edgelet.config import load_config
            config = load_config(cwd=Path.cwd())
            records += [(w.name, d.binding, d.id) for w in config.workers for d in w.decls("kv")]
        except Exception:  # no readable config here: the recorded bindings must do
            pass
        stored = self.path.exists()  # nothing recorded in a store that does not exist yet
        records += self.storage.recorded_bindings() if stored else []
        ids = {ns for _, _, ns in records} | (set(self.storage.key_counts()) if stored else set())
        if name in ids:
            return name
        for _, b, ns in records:  # config order: the first Worker's binding wins
            if b == name:
                return ns
        raise click.ClickException(
            f"no KV namespace or binding named {name!r} in {self.where}; known: "
            f"{', '.join(sorted(ids | {b for _, b, _ in records})) or 'none'}. "
            f"Pass --namespace-id, or run `edgelet dev` once so bindings are recorded")

    def list(self, ns: str, prefix: str | None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            rows, complete, cursor = self.storage.list(ns, prefix, None, cursor, self.where)
            out.extend(key_entry(*row) for row in rows)
            if complete:
                return out

    def get(self, ns: str, key: str) -> bytes | None:
        entry = self.storage.get(ns, key, self.where)
        return None if entry is None else bytes(entry[0])

    def put(self, ns: str, key: str, value: bytes, ttl: int | None, expiration: int | None,
            metadata: str | None) -> None:
        self.storage.put(ns, key, value, self.where, expiration=expiration, expiration_ttl=ttl,
                         metadata=metadata)

    def delete(self, ns: str, key: str) -> None:
        self.storage.delete(ns, key, self.where)

    def namespaces(self) -> builtins.list[dict[str, Any]]:
        counts = self.storage.key_counts()
        out: dict[str, dict[str, Any]] = {}
        for worker, binding, ns in self.storage.recorded_bindings():
            out.setdefault(ns, {"id": ns, "title": ns, "bindings": []})["bindings"].append(
                {"worker": worker, "binding": binding})
        for ns in counts:
            out.setdefault(ns, {"id": ns, "title": ns, "bindings": []})
        for ns, entry in out.items():
            entry["key_count"] = counts.get(ns, 0)
        return [out[ns] for ns in sorted(out)]


def _quote(text: str) -> str:
    """One path segment; '.' and '..' are escaped so no client or proxy folds them away."""
    if text in (".", ".."):
        return text.replace(".", "%2E")
    return quote(text, safe="")


#: Add --persist-to/--local (and --port/--ip) and hand the command ``kv`` (a backend).
_backend = backend_options(RemoteKV, LocalKV, name="kv", creates="put_key")


def _namespace_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--binding / --namespace-id, resolved to a namespace name the backend accepts."""

    @click.option("--binding", default=None, help="The KV binding name (env.NAME) in the config.")
    @click.option("--namespace-id", default=None, help="The namespace id (instead of --binding).")
    @functools.wraps(fn)
    def wrapper(*args: Any, binding: str | None, namespace_id: str | None, kv: Any,
                **kwargs: Any) -> Any:
        name = namespace_id or binding
        if not name:
            raise click.UsageError("say which namespace: --binding NAME or --namespace-id ID")
        ns = kv.resolve(name) if isinstance(kv, LocalKV) else name
        return fn(*args, kv=kv, ns=ns, **kwargs)

    return wrapper


# -- commands --------------------------------------------------------------------------------

@click.group()
def kv() -> None:
    """Read and write KV namespaces (of a running `edgelet dev`, or of the state folder)."""


@kv.group()
def key() -> None:
    """Manage the keys of a KV namespace."""


@key.command("list")
@_backend
@_namespace_options
@click.option("--prefix", default=None, help="Only keys that start with this.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (as wrangler does).")
def list_keys(kv: Any, ns: str, prefix: str | None, as_json: bool) -> None:
    """List every key in byte order (with expiration and metadata when set)."""
    keys = kv.list(ns, prefix)
    if as_json:
        click.echo(json.dumps(keys, indent=2, ensure_ascii=False))
        return
    print_table([{"name": k["name"], "expiration": k.get("expiration"),
                  "metadata": json.dumps(k["metadata"]) if "metadata" in k else None}
                 for k in keys], ["name", "expiration", "metadata"])


@key.command("get")
@_backend
@_namespace_options
@click.argument("key_name", metavar="KEY")
def get_key(kv: Any, ns: str, key_name: str) -> None:
    """Print the value of KEY (raw bytes, as stored)."""
    value = kv.get(ns, key_name)
    if value is None:
        raise click.ClickException(f"Value not found: key {key_name!r} in namespace {ns!r}")
    sys.stdout.buffer.write(value)
    if sys.stdout.isatty() and not value.endswith(b"\n"):
        sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


@key.command("put")
@_backend
@_namespace_options
@click.argument("key_name", metavar="KEY")
@click.argument("value", required=False)
@click.option("--path", "path", type=click.Path(dir_okay=False, exists=True),
              help="Read the value from this file instead.")
@click.option("--ttl", type=int, default=None, help="Expire after N seconds (at least 60).")
@click.option("--expiration", type=int, default=None,
              help="Expire at this epoch time in seconds (at least 60 s from now).")
@click.option("--metadata", default=None, help="JSON metadata (at most 1024 bytes).")
def put_key(kv: Any, ns: str, key_name: str, value: str | None, path: str | None,
            ttl: int | None, expiration: int | None, metadata: str | None) -> None:
    """Write VALUE (or the file at --path) to KEY."""
    if (value is None) == (path is None):
        raise click.UsageError("give either VALUE or --path FILE")
    data = Path(path).read_bytes() if path else (value or "").encode("utf-8")
    if metadata is not None:
        try:
            metadata = json.dumps(loads_arg(metadata), separators=(",", ":"), ensure_ascii=False)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON ({exc})", param_hint="--metadata") from None
    kv.put(ns, key_name, data, ttl, expiration, metadata)
    click.echo(f"Wrote {len(data)} bytes to key {key_name!r} in KV namespace {ns!r}.")


@key.command("delete")
@_backend
@_namespace_options
@click.argument("key_name", metavar="KEY")
def delete_key(kv: Any, ns: str, key_name: str) -> None:
    """Delete KEY (deleting an absent key is not an error)."""
    kv.delete(ns, key_name)
    click.echo(f"Deleted key {key_name!r} from KV namespace {ns!r}.")


@kv.group()
def namespace() -> None:
    """KV namespaces known to the platform."""


@namespace.command("list")
@_backend
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_namespaces(kv: Any, as_json: bool) -> None:
    """Namespace ids, the bindings that reach them, and their key counts."""
    rows = kv.namespaces()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table([{"id": r["id"], "keys": r["key_count"],
                  "bindings": ", ".join(f"{b['worker']}.{b['binding']}" for b in r["bindings"])}
                 for r in rows], ["id", "keys", "bindings"])
