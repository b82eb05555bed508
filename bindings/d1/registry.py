"""Which databases exist and what they are called: ids, names, bindings, migrations folders.

``DB`` in every CLI command and control-API path may be a binding name, a
``database_name`` or a ``database_id`` (SPEC 4). The catalog answers that from the config
(when one is at hand), from ``<state>/d1/databases.json`` (written by ``edgelet dev`` so the
CLI works from anywhere), and from the database files present in the state folder.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgelet.bindings.d1.config import DEFAULT_MIGRATIONS_TABLE

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.bindings.d1.storage import D1Store
    from edgelet.config import PlatformConfig


@dataclass
class DatabaseEntry:
    """One database as the catalog knows it."""

    id: str
    name: str
    bindings: list[tuple[str, str]] = field(default_factory=list)
    migrations_dir: Path | None = None
    migrations_table: str = DEFAULT_MIGRATIONS_TABLE

    def to_json(self) -> dict[str, Any]:
        return {"uuid": self.id, "name": self.name,
                "bindings": [{"worker": w, "binding": b} for w, b in self.bindings],
                "migrations_dir": None if self.migrations_dir is None else str(self.migrations_dir),
                "migrations_table": self.migrations_table}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatabaseEntry:
        return cls(id=str(data["uuid"]), name=str(data.get("name") or data["uuid"]),
                   bindings=[(b["worker"], b["binding"]) for b in data.get("bindings", [])],
                   migrations_dir=Path(data["migrations_dir"]) if data.get("migrations_dir") else None,
                   migrations_table=data.get("migrations_table") or DEFAULT_MIGRATIONS_TABLE)


def describe(entry: DatabaseEntry, conn: sqlite3.Connection | None, file: Path | None) -> dict[str, Any]:
    """wrangler's ``d1 info``/``d1 list`` fields (``uuid``, ``name``, ``num_tables``,
    ``file_size``) plus where it lives and which bindings reach it."""
    out = entry.to_json()
    out["version"] = "production"
    out["file"] = None if file is None else str(file)
    num_tables, size = 0, 0
    if conn is not None:
        num_tables = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table' "
                                  "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_cf_%'").fetchone()[0]
        size = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    out["num_tables"] = num_tables
    out["file_size"] = size
    return out


class Catalog:
    """Databases in config order; resolution by id, then name, then binding."""

    def __init__(self, entries: list[DatabaseEntry] | None = None) -> None:
        self.entries: list[DatabaseEntry] = entries or []

    @classmethod
    def from_config(cls, config: PlatformConfig) -> Catalog:
        by_id: dict[str, DatabaseEntry] = {}
        for worker in config.workers:
            for decl in worker.decls("d1"):
                entry = by_id.get(decl.database_id)
                if entry is None:
                    entry = by_id[decl.database_id] = DatabaseEntry(
                        decl.database_id, decl.database_name, migrations_dir=decl.migrations_dir,
                        migrations_table=decl.migrations_table)
                entry.bindings.append((worker.name, decl.binding))
        return cls(list(by_id.values()))

    @classmethod
    def from_file(cls, path: Path) -> Catalog:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        return cls([DatabaseEntry.from_json(d) for d in data if isinstance(d, dict) and "uuid" in d])

    def merged(self, other: Catalog) -> Catalog:
        """This catalog, then ``other``'s databases this one does not know."""
        known = {e.id for e in self.entries}
        return Catalog(self.entries + [e for e in other.entries if e.id not in known])

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    def all(self, store: D1Store | None) -> list[DatabaseEntry]:
        """Every known database, plus any database file in the state folder not in the config."""
        out = list(self.entries)
        if store is not None and store.folder is not None and store.folder.is_dir():
            known = {store.path_for(e.id) for e in out}
            for path in sorted(store.folder.glob("*.sqlite3")):
                if path not in known:
                    out.append(DatabaseEntry(path.stem, path.stem))
        return out

    def resolve(self, name: str, store: D1Store | None) -> DatabaseEntry:
        entries = self.all(store)
        for match in (lambda e: e.id == name, lambda e: e.name == name,
                      lambda e: any(b == name for _, b in e.bindings)):
            for entry in entries:
                if match(entry):
                    return entry
        known = sorted({e.name for e in entries} | {b for e in entries for _, b in e.bindings})
        raise LookupError(f"no D1 database with the binding, name or id {name!r}; known: "
                          f"{', '.join(known) or 'none (add d1_databases to the config)'}")
