"""``d1_databases``: wrangler's keys, and errors that name the file, the key and the fix."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest

from edgelet.config import ConfigError, load_config


def load(tmp_path: Path, tables: str, name: str = "wrangler.toml"):
    (tmp_path / "w.py").write_text("from workers import WorkerEntrypoint\nclass Default(WorkerEntrypoint):\n    pass\n")
    (tmp_path / name).write_text(textwrap.dedent(tables).lstrip("\n"))
    return load_config(cwd=tmp_path)


def test_wrangler_keys_are_read(tmp_path):
    config = load(tmp_path, """
        name = "w"
        main = "w.py"
        [[d1_databases]]
        binding = "DB"
        database_name = "prod-db"
        database_id = "4f7b2c1e-9a3d-4e55-8f0a-2b6c9d1e7a10"
        preview_database_id = "preview-id"
        migrations_dir = "sql/migrations"
        migrations_table = "my_migrations"

        [[d1_databases]]
        binding = "LOCAL_ONLY"
        database_name = "scratch"
    """)
    first, second = config.primary.decls("d1")
    assert (first.binding, first.database_name, first.database_id) == ("DB", "prod-db",
                                                                      "4f7b2c1e-9a3d-4e55-8f0a-2b6c9d1e7a10")
    assert first.preview_database_id == "preview-id"
    assert first.migrations_dir == (tmp_path / "sql" / "migrations").resolve()
    assert first.migrations_table == "my_migrations"
    # without database_id, as wrangler dev allows, the database runs locally under its name
    assert (second.database_id, second.migrations_dir) == ("scratch", (tmp_path / "migrations").resolve())


@pytest.mark.parametrize(("table", "key", "words"), [
    ('{ binding = "DB" }', "d1_databases[0].database_name", "required key is missing"),
    ('{ binding = "my-db", database_name = "x" }', "d1_databases[0].binding", "not a valid binding name"),
    ('{ binding = "DB", database_name = "x", database_id = 7 }', "d1_databases[0].database_id",
     "expected a string"),
    ('{ binding = "DB", database_name = "x", database_id = "" }', "d1_databases[0].database_id",
     "must not be empty"),
    ('{ binding = "DB", database_name = "x", migrations_table = "a b" }', "d1_databases[0].migrations_table",
     "not a plain SQL table name"),
])
def test_bad_values_stop_start_up_naming_file_and_key(tmp_path, table, key, words):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, f'name = "w"\nmain = "w.py"\nd1_databases = [{table}]\n')
    text = str(info.value)
    assert "wrangler.toml" in text and key in text and words in text


def test_one_id_with_two_names_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="declared as 'a'.*but as 'b'"):
        load(tmp_path, """
            [[workers]]
            name = "one"
            main = "w.py"
            d1_databases = [{ binding = "DB", database_name = "a", database_id = "same" }]
            [[workers]]
            name = "two"
            main = "w.py"
            d1_databases = [{ binding = "DB", database_name = "b", database_id = "same" }]
        """)


def test_unknown_key_warns_and_jsonc_works(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        config = load(tmp_path, """
            {
              "name": "w", "main": "w.py",
              // comments, as in Cloudflare's examples
              "d1_databases": [{ "binding": "DB", "database_name": "q", "database_id": "id-1", "colour": "red" }]
            }
        """, name="wrangler.jsonc")
    assert config.primary.decls("d1")[0].database_id == "id-1"
    assert "unknown key 'colour'" in caplog.text
