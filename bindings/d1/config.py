"""D1 databases: ``d1_databases = [{binding, database_name, database_id?, preview_database_id?,
migrations_dir?, migrations_table?}]`` (wrangler's keys).

The ``database_id`` is what identifies storage (one SQLite file per id): two Workers that
bind the same id share one database. Without an id, as ``wrangler dev`` allows, the database
runs locally under its ``database_name``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgelet.config import ConfigError, Section, display_path
from edgelet.config_section import _q

if TYPE_CHECKING:  # pragma: no cover
    from edgelet.config import PlatformConfig

KEYS: tuple[str, ...] = ("d1_databases",)

#: wrangler's defaults (packages/wrangler/src/d1/constants.ts)
DEFAULT_MIGRATIONS_DIR = "migrations"
DEFAULT_MIGRATIONS_TABLE = "d1_migrations"

_ALLOWED = ("binding", "database_name", "database_id", "preview_database_id", "migrations_dir",
            "migrations_table", "remote", "database_internal_env")
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_EXAMPLE_ID = _q("4f7b2c1e-9a3d-4e55-8f0a-2b6c9d1e7a10")


@dataclass(frozen=True)
class D1DatabaseDecl:
    """One D1 binding of a Worker."""

    binding: str
    database_name: str
    database_id: str
    preview_database_id: str | None = None
    #: absolute folder of ``NNNN_name.sql`` files (``migrations_dir``, default ``migrations``)
    migrations_dir: Path = field(default=Path(DEFAULT_MIGRATIONS_DIR), compare=False)
    migrations_table: str = DEFAULT_MIGRATIONS_TABLE
    #: where it was declared (``d1_databases[0]``) and in which file, for messages
    key_path: str = field(default="", compare=False, repr=False)
    config_file: Path | None = field(default=None, compare=False, repr=False)


def _nonempty(t: Section, key: str, *, required: bool, fix: str) -> str | None:
    value = t.str(key, required=required, fix=fix)
    if value is not None and not value.strip():
        raise t.error(key, "must not be empty", fix)
    return value


def parse(key: str, section: Section) -> list[D1DatabaseDecl]:
    out: list[D1DatabaseDecl] = []
    for t in section.tables(key):
        t.warn_unknown(_ALLOWED)
        binding = t.binding_name("binding")
        assert binding is not None
        name = _nonempty(t, "database_name", required=True, fix="set database_name to the database's name, "
                                                                  f"e.g. {t.example('database_name', _q('my-db'))}")
        db_id = _nonempty(t, "database_id", required=False,
                          fix=f"set database_id to the database's id, e.g. {t.example('database_id', _EXAMPLE_ID)}, "
                              f"or remove it to use database_name locally")
        preview = _nonempty(t, "preview_database_id", required=False,
                            fix="set preview_database_id to a database id string, or remove it")
        migrations = _nonempty(t, "migrations_dir", required=False, fix="set migrations_dir to a folder, e.g. "
                               + t.example("migrations_dir", _q("migrations")))
        table = _nonempty(t, "migrations_table", required=False, fix="set migrations_table to a table name, e.g. "
                          + t.example("migrations_table", _q("d1_migrations")))
        if table is not None and not _TABLE_NAME.match(table):
            raise t.error("migrations_table", f"{table!r} is not a plain SQL table name",
                          "use letters, digits and underscores, e.g. d1_migrations")
        if t.get("remote") is not None and not isinstance(t.get("remote"), bool):
            raise t.error("remote", "expected true or false",
                          "set remote = false (edgelet is always local) or remove it")
        assert name is not None
        out.append(D1DatabaseDecl(
            binding=binding, database_name=name, database_id=db_id or name, preview_database_id=preview,
            migrations_dir=t.resolve(migrations or DEFAULT_MIGRATIONS_DIR),
            migrations_table=table or DEFAULT_MIGRATIONS_TABLE, key_path=t.path, config_file=t.file))
    return out


def validate(config: PlatformConfig) -> None:
    """One id, one name: two declarations of the same ``database_id`` must agree on its name,
    or ``edgelet d1 execute NAME`` could reach a database the author did not mean."""
    seen: dict[str, D1DatabaseDecl] = {}
    for worker in config.workers:
        for decl in worker.decls("d1"):
            first = seen.setdefault(decl.database_id, decl)
            if first.database_name != decl.database_name:
                where = display_path(first.config_file) if first.config_file else "another file"
                raise ConfigError(
                    decl.config_file or worker.config_file, f"{decl.key_path}.database_name",
                    f"database_id {decl.database_id!r} is declared as {first.database_name!r} in {where} "
                    f"({first.key_path}) but as {decl.database_name!r} here",
                    "use one database_name per database_id (or give the databases different ids)")
