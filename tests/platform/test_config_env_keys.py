"""``--env NAME``: errors in a key the environment sets name ``env.NAME.<key>`` (they named
the top-level key, sending the reader to a table that was fine), and a binding table or
``vars`` left at the top level warns as wrangler does, since environments do not inherit
them (the Worker silently had no ``env.KV``)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from edgelet.config import ConfigError, load_config

SCRIPT = """
from workers import Response, WorkerEntrypoint

class Default(WorkerEntrypoint):
    async def fetch(self, request):
        return Response("ok")
"""


def write(tmp_path: Path, toml: str, name: str = "wrangler.toml") -> Path:
    (tmp_path / "w.py").write_text(SCRIPT)
    path = tmp_path / name
    path.write_text(toml)
    return path


@pytest.mark.parametrize("toml,where", [
    ('name = "a"\nmain = "w.py"\n[vars]\nA = "x"\n[env.staging]\nvars = 5\n',
     "wrangler.toml: env.staging.vars: expected a table, got 5"),
    ('name = "a"\nmain = "w.py"\n[env.staging]\nkv_namespaces = [{binding = "KV", id = 5}]\n',
     "wrangler.toml: env.staging.kv_namespaces[0].id: expected a string, got 5"),
    ('[[workers]]\nname = "a"\nmain = "w.py"\n[workers.env.staging]\nkv_namespaces = [{binding = ""}]\n',
     "wrangler.toml: workers[0].env.staging.kv_namespaces[0].binding: must not be empty"),
    ('name = "a"\nmain = "w.py"\n[env.staging]\ntriggers = {crons = ["61 * * * *"]}\n',
     "wrangler.toml: env.staging.triggers.crons[0]: \"61 * * * *\" is not a valid cron expression"),
])
def test_an_error_in_an_environment_names_the_environment_key(tmp_path: Path, toml: str, where: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, toml)], env="staging")
    assert f"/{where}" in str(caught.value), str(caught.value)


def test_an_inherited_key_is_still_named_where_it_is_written(tmp_path: Path) -> None:
    toml = 'name = "a"\nmain = "w.py"\ncompatibility_flags = "x"\n[env.staging]\nvars = {A = "1"}\n'
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, toml)], env="staging")
    assert "/wrangler.toml: compatibility_flags: expected a list" in str(caught.value)


def test_an_unknown_key_in_an_environment_is_placed_there(tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgelet.config")
    load_config([write(tmp_path, 'name = "a"\nmain = "w.py"\n[env.staging]\nbogus = 1\n')], env="staging")
    assert "wrangler.toml: unknown key 'bogus' in env.staging (ignored)" in caplog.text


def test_bindings_and_vars_left_at_the_top_level_warn(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="edgelet.config")
    toml = ('name = "a"\nmain = "w.py"\nkv_namespaces = [{binding = "KV"}]\ncompatibility_date = "2024-01-01"\n'
            '[vars]\nA = "x"\n[env.staging]\nname = "a-stg"\n[env.prod]\nvars = {A = "y"}\n'
            'kv_namespaces = [{binding = "KV"}]\n')
    config = load_config([write(tmp_path, toml)], env="staging")
    assert config.workers[0].decls("kv") == [] and config.workers[0].vars == {}
    for key in ("kv_namespaces", "vars"):
        assert (f"wrangler.toml: '{key}' is set at the top level but not in env.staging, and "
                f"environments do not inherit it, so --env staging runs without it; repeat it "
                f"there as env.staging.{key}") in caplog.text
    assert "compatibility_date" not in caplog.text and "'name'" not in caplog.text
    caplog.clear()
    load_config([write(tmp_path, toml)], env="prod")  # sets both itself: nothing to say
    assert "environments do not inherit" not in caplog.text


def test_dev_prints_the_environment_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'name = "a"\nmain = "w.py"\n[env.staging]\nvars = "x"\n', "wrangler.jsonc")
    path.write_text('{"name": "a", "main": "w.py", "env": {"staging": {"vars": "x"}}}')
    run = subprocess.run([sys.executable, "-m", "edgelet.cli", "dev", "--env", "staging", "--port", "0"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert 'wrangler.jsonc: env.staging.vars: expected a table, got "x"' in run.stderr + run.stdout


def test_a_compatibility_date_in_the_future_is_refused(tmp_path: Path) -> None:
    """Miniflare throws ERR_FUTURE_COMPATIBILITY_DATE and Cloudflare refuses the deploy; a
    typo such as 2205-01-01 for 2025-01-01 was accepted without a word."""
    import datetime as dt
    tomorrow = (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)).isoformat()
    toml = f'name = "a"\nmain = "w.py"\n[env.staging]\ncompatibility_date = "{tomorrow}"\n'
    with pytest.raises(ConfigError) as caught:
        load_config([write(tmp_path, toml)], env="staging")
    assert f'/wrangler.toml: env.staging.compatibility_date: "{tomorrow}" is in the future' in str(caught.value)
    assert "use today's date or an earlier one" in str(caught.value)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    load_config([write(tmp_path, f'name = "a"\nmain = "w.py"\ncompatibility_date = "{today}"\n')])


def test_a_second_config_file_beside_the_one_read_is_named(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """wrangler.toml and wrangler.jsonc side by side (half way through moving to JSONC): only
    wrangler.toml is read, and wrangler itself would read the JSONC; it was silent."""
    from edgelet.config import find_config
    caplog.set_level(logging.WARNING, logger="edgelet.config")
    write(tmp_path, 'name = "fromtoml"\nmain = "w.py"\n')
    (tmp_path / "wrangler.jsonc").write_text('{"name": "fromjsonc", "main": "w.py"}')
    sub = tmp_path / "src"
    sub.mkdir()
    assert find_config(sub) == tmp_path / "wrangler.toml"
    assert ("reading wrangler.toml; wrangler.jsonc beside it is ignored; wrangler would read "
            "wrangler.jsonc instead. Remove the file you do not use, or name one with -c") in caplog.text
    caplog.clear()
    (tmp_path / "wrangler.jsonc").unlink()
    assert find_config(sub) == tmp_path / "wrangler.toml"
    assert caplog.text == ""
