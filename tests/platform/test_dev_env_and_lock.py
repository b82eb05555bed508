"""`edgelet dev --env/--var`, config search from a subfolder, and who holds a state folder
(issue 19)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from conftest import EDGELET, write_app

CONFIG = """
name = "shop"
main = "src/shop.py"
vars = { STAGE = "prod", COLOUR = "blue" }
kv_namespaces = [{ binding = "CACHE", id = "prod-cache" }]

[triggers]
crons = ["0 * * * *"]

[env.staging]
vars = { STAGE = "staging" }
"""
SHOP = """
    from workers import Response, WorkerEntrypoint

    class Default(WorkerEntrypoint):
        async def fetch(self, request):
            env = self.env
            return Response(f"{env.STAGE} {getattr(env, 'COLOUR', '-')} {hasattr(env, 'CACHE')} "
                            f"{getattr(env, 'EXTRA', '-')}")

        async def scheduled(self, controller, env, ctx):
            pass
"""
APP = {"wrangler_like.toml": CONFIG, "src/shop.py": SHOP}


def test_env_takes_the_environment_table_with_wranglers_inheritance(dev: Any) -> None:
    s = dev(APP, "--in-memory", "--env", "staging")
    # vars and bindings are not inherited; the Worker is <name>-<env>; crons are inherited
    assert s.get("/").text == "staging - False -"
    workers = s.api("GET", "/workers")["result"]
    assert [(w["name"], w["crons"]) for w in workers] == [("shop-staging", ["0 * * * *"])]


def test_var_sets_string_vars_over_the_config(dev: Any) -> None:
    s = dev(APP, "--in-memory", "--var", "EXTRA:a:b", "--var", "COLOUR:red")
    assert s.get("/").text == "prod red True a:b"


def test_unknown_env_and_bad_var_are_usage_errors(tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    result = subprocess.run([*EDGELET, "dev", "--in-memory", "--env", "prod"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert 'no environment named "prod" (environments declared: staging)' in result.stderr
    result = subprocess.run([*EDGELET, "dev", "--in-memory", "--var", "NOCOLON"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "expected KEY:VALUE" in result.stderr


def test_dev_from_a_subfolder_finds_the_config_above_and_says_which(dev: Any, tmp_path: Path) -> None:
    write_app(tmp_path, APP)
    s = dev(None, cwd=tmp_path / "src")
    assert s.get("/").text == "prod blue True -"
    assert f"Using {tmp_path / 'wrangler_like.toml'}" in s.logs()
    # the state folder is the project's, beside the config, as wrangler keeps .wrangler/
    assert (tmp_path / ".edgelet" / "state" / "dev.lock").exists()
    s.stop()
    assert not (tmp_path / ".edgelet" / "state" / "dev.lock").exists()  # a clean stop removes it


def test_a_second_dev_on_the_same_state_folder_refuses_naming_the_first(dev: Any, tmp_path: Path) -> None:
    s = dev(APP)
    result = subprocess.run([*EDGELET, "dev", "--port", "0"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 1
    assert f"pid {s.proc.pid}, port {s.port}" in result.stderr, result.stderr
    assert "--persist-to" in result.stderr
    assert s.get("/").text.startswith("prod")  # the first one is untouched


def test_cli_without_dev_on_its_port_says_it_reads_the_folder_and_who_holds_it(dev: Any, tmp_path: Path) -> None:
    s = dev(APP)
    result = subprocess.run([*EDGELET, "kv", "key", "list", "--binding", "CACHE", "--port", "1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    line = next(x for x in result.stderr.splitlines() if "no `edgelet dev` answers" in x)
    assert f"reading the state folder {tmp_path / '.edgelet' / 'state'} directly" in line
    assert f"an `edgelet dev` on port {s.port}, pid {s.proc.pid}, holds this folder" in line
    s.stop()
    result = subprocess.run([*EDGELET, "queues", "list", "--port", "1"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "no `edgelet dev` answers on 127.0.0.1:1; reading the state folder" in result.stderr
    assert "holds this folder" not in result.stderr  # the lock died with that dev
