"""``edgelet d1``: wrangler's ``d1`` commands, same arguments, against local databases.

``DB`` is a binding name, a ``database_name`` or a ``database_id``. When an ``edgelet dev``
answers (``--port``/``--ip``) it says which database that is and where its file lives; the
command then works on that file directly (SQLite's WAL makes that safe while ``dev`` runs,
and keeps ``--file`` atomic with a progress bar), or through the control API when ``dev``
keeps its state in memory. With no ``dev`` running, the config here (``-c``) and
``<persist-to>/d1/`` say where the database is. ``--local`` is accepted and changes nothing.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from edgelet.bindings.d1.errors import D1Error
from edgelet.bindings.d1.registry import Catalog, DatabaseEntry, describe
from edgelet.bindings.d1.sqltext import drop_dump_wrapper, export_sql, split_statements
from edgelet.bindings.d1.storage import D1Database, file_name
from edgelet.client import ApiClient, offline_notice, persist_to_option, port_options, print_table
from edgelet.progress import Bar, progress_bar

#: a ``--file`` with at least this many statements gets a progress bar
PROGRESS_FROM = 50
#: an export of at least this many rows shows a progress bar (in a terminal)
EXPORT_PROGRESS_FROM = 1000
_MIGRATION = re.compile(r"^(\d+)_.*\.sql$")


# -- where a database is -----------------------------------------------------------------------

@dataclass
class Target:
    """A resolved database: its catalog entry, and either its file or the dev that holds it."""

    entry: DatabaseEntry
    file: Path | None
    client: ApiClient | None

    @property
    def label(self) -> str:
        where = f"file {self.file}" if self.file else "the in-memory state of `edgelet dev`"
        return f"D1 database {self.entry.name!r} (id {self.entry.id}) in {where}"


def _local_catalog(config: str | None, state: Path) -> Catalog:
    catalog = Catalog()
    try:
        from edgelet.config import load_config
        catalog = Catalog.from_config(load_config([config] if config else None, cwd=Path.cwd()))
    except Exception as exc:  # no usable config here: what `dev` recorded must do
        if config:  # but a config named with -c must load
            raise click.ClickException(str(exc)) from None
    return catalog.merged(Catalog.from_file(state / "d1" / "databases.json"))


def _locate(name: str, client: ApiClient, persist_to: str, config: str | None) -> Target:
    state = Path(persist_to).resolve()
    local = _local_catalog(config, state)
    if client.answers():
        data = client.get(f"/d1/database/{quote(name, safe='')}")
        entry = DatabaseEntry.from_json(data)
        mine = next((e for e in local.entries if e.id == entry.id), None)
        if entry.migrations_dir is None and mine is not None:
            entry.migrations_dir = mine.migrations_dir
        file = Path(data["file"]) if data.get("file") else None
        return Target(entry, file, None if file else client)
    offline_notice(client.port, client.ip, state)
    try:
        entry = local.resolve(name, None)
    except LookupError as exc:
        folder = state / "d1"
        if (folder / file_name(name)).exists():
            entry = DatabaseEntry(name, name)
        else:
            raise click.ClickException(f"{exc.args[0]}. Run this where the config is (or pass -c FILE), "
                                       f"or start `edgelet dev` once so databases are recorded in {folder}") from None
    return Target(entry, state / "d1" / file_name(entry.id), None)


# -- running SQL -------------------------------------------------------------------------------

class LocalRunner:
    """SQL straight onto the database file, with the same rules as a Worker's binding."""

    def __init__(self, target: Target, *, create: bool) -> None:
        assert target.file is not None
        if not target.file.exists() and not create:
            raise click.ClickException(f"{target.label}: the file does not exist yet (nothing was ever "
                                       f"written); run `edgelet d1 execute` or `edgelet dev` first")
        self.db = D1Database(target.entry.id, target.file)

    def run(self, statements: list[tuple[str, list[Any]]], where: str,
            progress: Callable[[int], None] | None = None) -> list[list[Any]]:
        return self.db.run(statements, where, progress)

    def connection(self) -> sqlite3.Connection:
        return self.db.conn

    def close(self) -> None:
        self.db.close()


class RemoteRunner:
    """Through the control API of an ``edgelet dev --in-memory``."""

    def __init__(self, target: Target) -> None:
        assert target.client is not None
        self.client = target.client
        self.path = f"/d1/database/{quote(target.entry.id, safe='')}"
        self._copy: sqlite3.Connection | None = None

    def run(self, statements: list[tuple[str, list[Any]]], where: str,
            progress: Callable[[int], None] | None = None) -> list[list[Any]]:
        answer = self.client.post(f"{self.path}/raw", {"batch": [{"sql": s, "params": p} for s, p in statements]})
        for i, result in enumerate(answer, 1):
            if result.get("truncated"):  # the control API caps a statement's rows: never pass a cut list off as whole
                click.echo(f"warning: {where}: statement {i} returned more rows than `edgelet dev` hands out; "
                           f"only the first {len(result['results']['rows']):,} are shown; page with LIMIT and "
                           f"OFFSET", err=True)
        if progress is not None:
            progress(len(statements))
        return [[r["results"]["columns"], r["results"]["rows"], r["meta"]] for r in answer]

    def connection(self) -> sqlite3.Connection:
        """A private in-memory copy of the database (for export)."""
        if self._copy is None:
            import httpx
            resp = httpx.get(self.client.base + f"{self.path}/dump", headers=self.client.headers, timeout=60)
            if resp.status_code != 200:
                raise click.ClickException(f"reading the database from `edgelet dev` failed: HTTP "
                                           f"{resp.status_code} {resp.text[:200]}")
            self._copy = sqlite3.connect(":memory:")
            self._copy.deserialize(resp.content)
        return self._copy

    def close(self) -> None:
        if self._copy is not None:
            self._copy.close()


@contextmanager
def _runner(target: Target, *, create: bool = False) -> Iterator[LocalRunner | RemoteRunner]:
    runner: LocalRunner | RemoteRunner = LocalRunner(target, create=create) if target.file else RemoteRunner(target)
    try:
        yield runner
    except D1Error as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runner.close()


def _run_with_progress(runner: LocalRunner | RemoteRunner, statements: list[tuple[str, list[Any]]],
                       where: str, label: str) -> list[list[Any]]:
    with progress_bar(label, len(statements), when=len(statements) >= PROGRESS_FROM) as bar:
        return runner.run(statements, where, lambda n: bar.update(completed=n) if bar.drawn else None)


def _print_outcomes(outcomes: list[list[Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([{"results": [dict(zip(c, r, strict=False)) for r in rows], "success": True,
                                "meta": meta} for c, rows, meta in outcomes], indent=2, default=_jsonable))
        return
    for columns, rows, _meta in outcomes:
        if columns:
            print_table([dict(zip(columns, r, strict=False)) for r in rows], columns)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return list(value)  # as D1 returns a BLOB: an array of byte values
    raise TypeError(f"cannot show a {type(value).__name__} as JSON")


# -- options -----------------------------------------------------------------------------------

def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--port/--ip (a running dev), --persist-to, -c/--config, --local (accepted)."""

    @port_options
    @persist_to_option("State folder, used when no `edgelet dev` answers.")
    @click.option("-c", "--config", "config", default=None, type=click.Path(dir_okay=False, exists=True),
                  help="The config file that declares the database (default: the one here).")
    @click.option("--local", is_flag=True, help="Accepted for wrangler habits; edgelet is always local.")
    @click.option("--remote", is_flag=True, hidden=True)
    @functools.wraps(fn)
    def wrapper(*args: Any, local: bool, remote: bool, **kwargs: Any) -> Any:
        if remote:
            raise click.UsageError("--remote reaches Cloudflare's servers; edgelet only has local databases "
                                   "(drop --remote, or use wrangler for that)")
        try:
            return fn(*args, **kwargs)
        except LookupError as exc:
            raise click.ClickException(str(exc.args[0]) if exc.args else str(exc)) from None

    return wrapper


# -- commands ----------------------------------------------------------------------------------

@click.group()
def d1() -> None:
    """D1 databases (wrangler's `d1` commands, run locally)."""


@d1.command("list")
@_common
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_databases(client: ApiClient, persist_to: str, config: str | None, as_json: bool) -> None:
    """Every D1 database: configured ones and those with data in the state folder."""
    if client.answers():
        rows = client.get("/d1/database")
    else:
        from edgelet.bindings.d1.storage import D1Store
        state = Path(persist_to).resolve()
        offline_notice(client.port, client.ip, state)
        store = D1Store(state)
        rows = []
        for entry in _local_catalog(config, state).all(store):
            rows.append(_describe_file(entry, store.path_for(entry.id)))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table([{"uuid": r["uuid"], "name": r["name"], "num_tables": r["num_tables"], "file_size": r["file_size"],
                  "bindings": ", ".join(f"{b['worker']}.{b['binding']}" for b in r["bindings"])} for r in rows],
                ["uuid", "name", "num_tables", "file_size", "bindings"])


def _describe_file(entry: DatabaseEntry, path: Path | None) -> dict[str, Any]:
    if path is None or not path.exists():
        return describe(entry, None, path)
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return describe(entry, conn, path)
    finally:
        conn.close()


@d1.command("info")
@_common
@click.argument("database", metavar="DB")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(client: ApiClient, persist_to: str, config: str | None, database: str, as_json: bool) -> None:
    """Facts about one database: id, name, tables, size, file."""
    target = _locate(database, client, persist_to, config)
    if target.client is not None:
        data = target.client.get(f"/d1/database/{quote(target.entry.id, safe='')}")
    else:
        data = _describe_file(target.entry, target.file)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    print_table([{"field": k, "value": json.dumps(v) if isinstance(v, (list, dict)) else v}
                 for k, v in data.items()], ["field", "value"])


@d1.command("execute")
@_common
@click.argument("database", metavar="DB")
@click.option("--command", "command", default=None, help="The SQL to run (one or more statements).")
@click.option("--file", "file", default=None, type=click.Path(dir_okay=False, exists=True),
              help="A .sql file to run (all of it in one transaction).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON (as wrangler does).")
@click.option("-y", "--yes", is_flag=True, hidden=True, help="Accepted for wrangler habits.")
@click.option("--preview", is_flag=True, hidden=True, help="Accepted; edgelet has one copy of each database.")
def execute(client: ApiClient, persist_to: str, config: str | None, database: str, command: str | None,
            file: str | None, as_json: bool, yes: bool, preview: bool) -> None:
    """Run SQL from --command or --file against DB, all or nothing."""
    if (command is None) == (file is None):
        raise click.UsageError("give exactly one of --command SQL or --file FILE")
    source = command if command is not None else _read_sql(Path(file or ""), "nothing was run")
    statements = drop_dump_wrapper(split_statements(source))
    if not statements:
        raise click.ClickException(f"no SQL statements in {'--command' if command is not None else file}")
    target = _locate(database, client, persist_to, config)
    if not as_json:
        click.echo(f"Executing on {target.label}:", err=True)
    where = f"edgelet d1 execute {'--command' if command is not None else file}"
    with _runner(target, create=True) as runner:
        outcomes = _run_with_progress(runner, [(s, []) for s in statements], where,
                                      f"Executing {Path(file).name if file else 'SQL'}")
    if not as_json:
        click.echo(f"{len(outcomes)} command{'s' if len(outcomes) != 1 else ''} executed successfully.", err=True)
    _print_outcomes(outcomes, as_json)


@d1.command("export")
@_common
@click.argument("database", metavar="DB")
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="The .sql file to write.")
@click.option("--table", "tables", multiple=True, help="Only this table (repeatable).")
@click.option("--no-schema", is_flag=True, help="Only the data (INSERTs).")
@click.option("--no-data", is_flag=True, help="Only the schema (CREATEs).")
def export(client: ApiClient, persist_to: str, config: str | None, database: str, output: str,
           tables: tuple[str, ...], no_schema: bool, no_data: bool) -> None:
    """Write DB as SQL that `d1 execute --file` loads back."""
    if no_schema and no_data:
        raise click.UsageError("--no-schema and --no-data together would export nothing; drop one")
    out = Path(output)
    _writable_parent(out, "--output")
    target = _locate(database, client, persist_to, config)
    tmp = out.with_name(out.name + ".partial")
    with _runner(target) as runner:
        conn = runner.connection()
        rows = 0 if no_data else _row_count(conn, list(tables))
        try:
            with open(tmp, "w", encoding="utf-8") as fh, \
                    progress_bar(f"Exporting {target.entry.name}", rows, when=rows >= EXPORT_PROGRESS_FROM) as bar:
                for line in export_sql(conn, tables=list(tables) or None, schema=not no_schema, data=not no_data):
                    fh.write(line + "\n")
                    if line.startswith("INSERT INTO "):
                        bar.advance()
        except ValueError as exc:
            tmp.unlink(missing_ok=True)
            raise click.ClickException(f"{target.label}: {exc}") from None
    tmp.replace(out)  # a half-written export never takes the output's name
    click.echo(f"Exported {target.label} to {out}.")


def _read_sql(path: Path, nothing_done: str) -> str:
    """The text of a .sql file; one that is not UTF-8 is a message naming the file and the
    first bad byte (``nothing_done`` says what was left untouched), not a traceback."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start:exc.start + 1].hex()
        raise click.ClickException(
            f"{path}: not UTF-8 text (byte 0x{bad} at offset {exc.start}); {nothing_done}. Fix: save "
            f"the file as UTF-8 (e.g. iconv -f latin1 -t utf-8), or remove the file if it is not SQL") from None
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read it ({exc.strerror}); {nothing_done}") from None


def _writable_parent(out: Path, option: str) -> None:
    """Refuse an output path whose folder is missing before any work starts (a traceback and a
    finished export with nowhere to go otherwise)."""
    folder = out.parent
    if not folder.is_dir():
        raise click.ClickException(
            f"{option} {out}: the folder {folder} does not exist. Fix: create it (mkdir -p {folder}) "
            f"or write the file somewhere that exists")


def _row_count(conn: sqlite3.Connection, tables: list[str]) -> int:
    """Rows an export of ``tables`` (every table when empty) writes, for its progress bar."""
    known = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                        "'sqlite_%' AND name NOT LIKE '_cf_%'")]
    total = 0
    for name in tables or known:
        if name in known:
            quoted = name.replace('"', '""')
            total += conn.execute(f'SELECT COUNT(*) FROM "{quoted}"').fetchone()[0]
    return total


# -- migrations --------------------------------------------------------------------------------

@d1.group()
def migrations() -> None:
    """Numbered .sql files in migrations_dir, applied once each, recorded in d1_migrations."""


def _migrations_dir(target: Target, *, create: bool) -> Path:
    folder = target.entry.migrations_dir
    if folder is None:
        raise click.ClickException(f"{target.label} is not declared in a config here, so its migrations_dir is "
                                   f"unknown; run the command where the config is, or pass -c FILE")
    if not folder.is_dir():
        if not create:
            raise click.ClickException(f"No migrations present at {folder}. Create one with `edgelet d1 "
                                       f"migrations create {target.entry.name} NAME`, or set migrations_dir")
        folder.mkdir(parents=True)
    return folder


def _migration_files(folder: Path) -> list[str]:
    """``NNNN_name.sql`` files in number order (then name), as wrangler sorts them."""
    names = [p.name for p in folder.iterdir() if p.is_file() and p.name.endswith(".sql")]
    return sorted(names, key=lambda n: (int(m.group(1)) if (m := _MIGRATION.match(n)) else 0, n))


def _applied(runner: LocalRunner | RemoteRunner, table: str, where: str) -> list[str]:
    runner.run([(f"CREATE TABLE IF NOT EXISTS {table} (\n    id         INTEGER PRIMARY KEY AUTOINCREMENT,\n"
                 f"    name       TEXT UNIQUE,\n    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP NOT NULL\n)",
                 [])], where)
    outcome = runner.run([(f"SELECT name FROM {table} ORDER BY id", [])], where)[0]
    return [row[0] for row in outcome[1]]


@migrations.command("create")
@_common
@click.argument("database", metavar="DB")
@click.argument("message", metavar="NAME")
def migrations_create(client: ApiClient, persist_to: str, config: str | None, database: str, message: str) -> None:
    """Add the next NNNN_NAME.sql file to DB's migrations_dir."""
    if not message.strip() or any(c in message for c in "/\\\0"):
        raise click.BadParameter(
            f"{message!r} cannot be a migration's file name: give a non-empty name without / or \\ "
            f"(e.g. create_users_table); it becomes NNNN_name.sql in the migrations folder",
            param_hint="NAME")
    target = _locate(database, client, persist_to, config)
    folder = _migrations_dir(target, create=True)
    numbers = [int(m.group(1)) for n in _migration_files(folder) if (m := _MIGRATION.match(n))]
    number = f"{(max(numbers) + 1) if numbers else 1:04d}"
    name = f"{number}_{message.replace(' ', '_')}.sql"
    path = folder / name
    stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    path.write_text(f"-- Migration number: {number} \t {stamp}\n")
    click.echo(f"Successfully created Migration '{name}'!\nThe migration is available for editing here\n{path}")


@migrations.command("list")
@_common
@click.argument("database", metavar="DB")
def migrations_list(client: ApiClient, persist_to: str, config: str | None, database: str) -> None:
    """The migrations of DB not applied yet."""
    target = _locate(database, client, persist_to, config)
    folder = _migrations_dir(target, create=False)
    with _runner(target, create=True) as runner:
        applied = set(_applied(runner, target.entry.migrations_table, "edgelet d1 migrations list"))
    pending = [n for n in _migration_files(folder) if n not in applied]
    if not pending:
        click.echo("No migrations to apply!")
        return
    click.echo("Migrations to be applied:")
    print_table([{"name": n} for n in pending], ["name"])


@migrations.command("apply")
@_common
@click.argument("database", metavar="DB")
@click.option("--force", is_flag=True, hidden=True, help="Accepted for wrangler habits (edgelet never prompts).")
@click.option("--preview", is_flag=True, hidden=True)
def migrations_apply(client: ApiClient, persist_to: str, config: str | None, database: str, force: bool,
                     preview: bool) -> None:
    """Apply DB's unapplied migrations in order, each in its own transaction."""
    target = _locate(database, client, persist_to, config)
    folder = _migrations_dir(target, create=False)
    table = target.entry.migrations_table
    with _runner(target, create=True) as runner:
        applied = set(_applied(runner, table, "edgelet d1 migrations apply"))
        pending = [n for n in _migration_files(folder) if n not in applied]
        if not pending:
            click.echo("No migrations to apply!")
            return
        click.echo(f"Migrations to be applied to {target.label}:")
        print_table([{"name": n} for n in pending], ["name"])
        with progress_bar("Applying migrations", len(pending)) as bar:
            _apply_migrations(runner, folder, table, pending, bar)
    click.echo(f"{len(pending)} migration{'s' if len(pending) != 1 else ''} applied.")


def _apply_migrations(runner: LocalRunner | RemoteRunner, folder: Path, table: str, pending: list[str],
                      bar: Bar) -> None:
    """Each migration in its own transaction, recorded in ``table`` with it. Every file is
    read first, so one that cannot be read stops the command before any migration is applied."""
    scripts = {name: _read_sql(folder / name, "no migration was applied") for name in pending}
    for name in pending:
        bar.update(description=f"Applying {name}")
        statements = drop_dump_wrapper(split_statements(scripts[name]))
        literal = name.replace("'", "''")
        work: list[tuple[str, list[Any]]] = [(s, []) for s in statements]
        work.append((f"INSERT INTO {table} (name) VALUES ('{literal}')", []))
        try:
            runner.run(work, f"migration {name}")
        except D1Error as exc:
            raise click.ClickException(f"Migration {name} failed and was rolled back (the ones before it "
                                       f"stay applied): {exc}") from None
        click.echo(f"applied {name}")
        bar.advance()
    bar.update(description="Applied migrations")
