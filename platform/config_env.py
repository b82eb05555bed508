"""``[env.NAME]`` tables and ``--var KEY:VALUE``: wrangler's environment rules, as data.

Why a module of its own: choosing an environment is a rewrite of the raw table before it is
parsed, so every check in :mod:`edgelet.config` then runs on the result exactly as if the
file had been written that way (errors still name the file and the key).

wrangler's rules (developers.cloudflare.com/workers/wrangler/environments): a named
environment is a Worker called ``<name>-<env>`` unless it sets ``name``; *inheritable* keys
(``main``, ``compatibility_date``, ``triggers``, ``assets``, ...) fall back to the top level;
``vars`` and every binding table are *not* inherited: an environment without its own
``kv_namespaces`` has none.
"""

from __future__ import annotations

from typing import Any

#: keys an environment takes from the top level when it does not set them itself.
INHERITABLE_KEYS: frozenset[str] = frozenset({
    "main", "compatibility_date", "compatibility_flags", "triggers", "limits", "assets",
    "account_id", "workers_dev", "preview_urls", "route", "routes", "build", "minify",
    "placement", "rules", "no_bundle", "find_additional_modules", "base_dir", "observability",
    "logpush", "upload_source_maps", "keep_vars", "python_modules", "send_metrics",
})

#: top-level keys that are never part of an environment (they describe the file).
FILE_KEYS: frozenset[str] = frozenset({"env", "$schema", "migrations", "dev", "workers"})


def env_names(table: dict[str, Any]) -> list[str]:
    """The environments a Worker table declares (``[env.NAME]``)."""
    env = table.get("env")
    return sorted(env) if isinstance(env, dict) else []


def apply_env(table: dict[str, Any], env: str) -> tuple[dict[str, Any], bool]:
    """The Worker table as environment ``env`` sees it, and whether ``env`` was declared.

    Without a ``[env.<env>]`` table the top level is used as is (wrangler does the same
    for a Worker that has no such environment).
    """
    envs = table.get("env")
    chosen = envs.get(env) if isinstance(envs, dict) else None
    if not isinstance(chosen, dict):
        return table, False
    out: dict[str, Any] = {k: v for k, v in table.items()
                           if k in INHERITABLE_KEYS and k not in FILE_KEYS}
    if "migrations" in table:  # Durable Object migrations describe classes, not an env
        out["migrations"] = table["migrations"]
    out.update(chosen)
    if "name" not in chosen and isinstance(table.get("name"), str):
        out["name"] = f"{table['name']}-{env}"
    return out, True


def env_origins(table: dict[str, Any], env: str, path: str) -> dict[str, str]:
    """For each key environment ``env`` sets itself, the dotted table it is written in
    (``env.NAME``, under ``path``): errors and warnings about it name that table."""
    envs = table.get("env")
    chosen = envs.get(env) if isinstance(envs, dict) else None
    if not isinstance(chosen, dict):
        return {}
    where = f"{path}.env.{env}" if path else f"env.{env}"
    return {key: where for key in chosen}


def not_inherited(table: dict[str, Any], env: str) -> list[str]:
    """Top-level keys environment ``env`` does not get (not inheritable, not set by it):
    wrangler warns about each, since a binding left at the top level is silently absent."""
    envs = table.get("env")
    chosen = envs.get(env) if isinstance(envs, dict) else None
    if not isinstance(chosen, dict):
        return []
    return [key for key in table if key not in INHERITABLE_KEYS and key not in FILE_KEYS
            and key != "name" and key not in chosen]


def parse_var(text: str) -> tuple[str, str]:
    """``KEY:VALUE`` from ``--var`` (the value may hold further colons, as in wrangler)."""
    key, sep, value = text.partition(":")
    key = key.strip()
    if not sep or not key:
        raise ValueError(f"--var {text!r}: expected KEY:VALUE, e.g. --var GREETING:hello")
    return key, value
