"""Configuration loader: wrangler-style files -> one validated :class:`PlatformConfig`.

The objects it builds live in ``config_model``, script inspection in ``config_scripts``,
``.dev.vars`` in ``dev_vars`` and the shared ``Section``/``ConfigError`` in
``config_section``; this module reads files and parses Workers.

Why one module does all of this up front: the platform must never be half-started, so
every file is read, every Worker parsed and every cross-Worker reference checked before
anything runs. A mistake stops start-up with exactly one :class:`ConfigError` that names
the file, the key (as a dotted path such as ``workers[1].kv_namespaces[0].id``) and the
fix.

The loader owns the keys every Worker has (``name``, ``main``, ``vars``, ...). Binding
tables belong to the binding plug-ins: each ``bindings/<kind>/config.py`` declares the
top-level ``KEYS`` it reads, parses them through a :class:`Section` (so its errors carry
the same file and key path) and may add a ``validate(config)`` for checks that span
Workers. Adding a binding kind therefore needs no change here.
"""

from __future__ import annotations

import builtins
import datetime as _dt
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CONFIG_NAMES",
    "ConfigError",
    "Limits",
    "PlatformConfig",
    "Section",
    "WorkerConfig",
    "display_path",
    "find_config",
    "is_valid_cron",
    "load_config",
    "load_config_dict",
    "require_class",
    "script_classes",
]

log = logging.getLogger("edgelet.config")

#: Discovery order of :func:`find_config` (ours first, then wrangler's own names).
CONFIG_NAMES: tuple[str, ...] = ("wrangler_like.toml", "wrangler.toml", "wrangler.json", "wrangler.jsonc")

#: Keys every Worker table may carry that this module reads itself.
COMMON_KEYS: frozenset[str] = frozenset(
    {"name", "main", "compatibility_date", "compatibility_flags", "vars", "triggers", "limits"}
)

#: wrangler keys that only matter when deploying (or are handled elsewhere, such as
#: ``migrations`` for Durable Objects). They are accepted silently so that a real
#: wrangler file loads without noise; anything else unknown gets a warning.
IGNORED_KEYS: frozenset[str] = frozenset(
    {
        "$schema",
        "account_id",
        "workers_dev",
        "preview_urls",
        "route",
        "routes",
        "observability",
        "build",
        "minify",
        "placement",
        "migrations",
        "dev",
        "env",
        "rules",
        "upload_source_maps",
        "keep_vars",
        "logpush",
        "tail_consumers",
        "unsafe",
        "send_metrics",
        "no_bundle",
        "python_modules",
        "find_additional_modules",
        "base_dir",
    }
)

_WORKER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


from edgelet.config_model import Limits, PlatformConfig, WorkerConfig  # noqa: E402 - re-exported
from edgelet.config_scripts import require_class, script_classes  # noqa: E402 - re-exported
from edgelet.config_section import (  # noqa: E402 - re-exported for binding config modules
    ConfigError,
    Section,
    _describe,
    _q,
    display_path,
    is_valid_cron,
    read_config_text,
)
from edgelet.dev_vars import DevVars, dev_vars_path, read_dev_vars  # noqa: E402

# --------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------


def find_config(cwd: Path) -> Path:
    """The first of :data:`CONFIG_NAMES` in ``cwd``, else in the nearest parent folder that
    has one (as wrangler does, so ``edgelet dev`` works from a project's subfolder)."""
    cwd = Path(cwd).resolve()
    for folder in (cwd, *cwd.parents):
        found = [folder / name for name in CONFIG_NAMES if (folder / name).is_file()]
        if found:
            if len(found) > 1:
                _warn_beside(found)
            return found[0]
    raise ConfigError(
        cwd,
        None,
        f"no configuration file found here or in any parent folder (looked for {', '.join(CONFIG_NAMES)})",
        "create wrangler_like.toml here, or pass one with -c FILE",
    )


#: the order wrangler itself looks in (it knows no wrangler_like.toml)
_WRANGLER_ORDER = ("wrangler.json", "wrangler.jsonc", "wrangler.toml")


def _warn_beside(found: list[Path]) -> None:
    """Several config files in one folder: only the first is read. Say so, since an edit to
    another one (say a wrangler.jsonc after moving off wrangler.toml) would change nothing,
    and wrangler, which prefers JSON, may read a different one."""
    used, ignored = found[0], found[1:]
    names = [p.name for p in found]
    wrangler = next((n for n in _WRANGLER_ORDER if n in names), None)
    differs = (f"; wrangler would read {wrangler} instead" if wrangler and wrangler != used.name else "")
    log.warning("%s: reading %s; %s beside it %s ignored%s. Remove the file you do not use, or "
                "name one with -c", display_path(used.parent), used.name,
                ", ".join(p.name for p in ignored), "is" if len(ignored) == 1 else "are", differs)


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _read_file(path: Path) -> dict[str, Any]:
    """Parse one config file (TOML, or JSON/JSONC via edgelet.jsonc) into a dict."""
    text = read_config_text(path)

    if path.suffix.lower() in (".json", ".jsonc", ".json5"):
        from edgelet.jsonc import JsoncError, loads

        try:
            data = loads(text)
        except JsoncError as exc:
            raise ConfigError(
                path,
                None,
                f"invalid JSON: {exc.message}",
                "correct the syntax at that position (comments and trailing commas are allowed)",
                line=exc.line,
                column=exc.column,
            ) from None
        if not isinstance(data, dict):
            raise ConfigError(
                path, None, f"expected a JSON object at the top, got {_describe(data)}", "wrap the settings in { ... }"
            )
        _check_depth(data, path)
        return data

    import tomllib

    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(
            path, None, "values are nested too deeply to read", f"nest tables at most {MAX_DEPTH} levels deep"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        line = getattr(exc, "lineno", None)
        col = getattr(exc, "colno", None)
        m = _TOML_POS.search(msg)
        if m:
            line, col = builtins.int(m.group(1)), builtins.int(m.group(2))
            msg = msg[: m.start()]
        elif _TOML_END.search(msg):
            msg = _TOML_END.sub("", msg) + " (at end of document)"
        raise ConfigError(
            path,
            None,
            f"invalid TOML: {msg}",
            "correct the syntax at that position (strings need quotes; see https://toml.io)",
            line=line,
            column=col,
        ) from None
    _check_depth(data, path)
    return data


#: how deeply tables and lists may nest in a config file. Why a limit: every value is
#: copied to the Worker's isolate and read back by code that recurses; real configs nest
#: a few levels, and a value nested hundreds deep is a mistake that must be named, not a
#: RecursionError.
MAX_DEPTH = 32


def _check_depth(data: Any, path: Path) -> None:
    """ConfigError naming the first key nested deeper than :data:`MAX_DEPTH` (no recursion)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            shown = key if len(key) <= 80 else key[:77] + "..."
            raise ConfigError(
                path,
                shown,
                f"values are nested more than {MAX_DEPTH} levels deep",
                "flatten the value (or store it as a JSON string and parse it in the Worker)",
            )
        if isinstance(value, dict):
            for k, v in value.items():
                stack.append((v, f"{key}.{k}" if key else str(k), depth + 1))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                stack.append((v, f"{key}[{i}]", depth + 1))


# --------------------------------------------------------------------------------------
# parsing Workers
# --------------------------------------------------------------------------------------


def _binding_modules() -> dict[str, Any]:
    from edgelet.bindings import config_modules

    return config_modules()


def _binding_keys(modules: dict[str, Any]) -> dict[str, str]:
    """top-level key -> binding kind that claims it."""
    claimed: dict[str, str] = {}
    for kind, mod in modules.items():
        for key in getattr(mod, "KEYS", ()):
            claimed.setdefault(key, kind)
    return claimed


def _parse_file(data: dict[str, Any], file: Path, base_dir: Path, modules: dict[str, Any],
                env: str | None = None, found_envs: set[str] | None = None) -> list[WorkerConfig]:
    """All Workers of one file: the top level, or each ``[[workers]]`` table.

    ``env`` picks each Worker table's ``[env.NAME]`` (see :mod:`edgelet.config_env`); the
    names of the environments the file declares are added to ``found_envs``.
    """
    from edgelet.config_env import apply_env, env_names, env_origins

    secrets = read_dev_vars(dev_vars_path(base_dir, env))
    claimed = _binding_keys(modules)
    if "workers" not in data:
        if found_envs is not None:
            found_envs.update(env_names(data))
        origins: dict[str, str] = {}
        if env:
            _warn_not_inherited(file, data, env, "", claimed)
            origins = env_origins(data, env, "")
            data, _ = apply_env(data, env)
        return [_parse_worker(Section(file, "", data, base_dir, origins), secrets, modules, claimed)]
    root = Section(file, "", data, base_dir)

    tables = root.tables("workers")
    if not tables:
        raise root.error(
            "workers", "the list of Workers is empty", "add at least one [[workers]] table with name and main"
        )
    for key in data:
        if key == "workers" or key in IGNORED_KEYS:
            continue
        if key in COMMON_KEYS or key in claimed:
            # Silently dropping e.g. kv_namespaces beside [[workers]] would leave a Worker
            # without a binding its author thinks it has; better to stop and say so.
            raise root.error(
                key,
                f"top-level '{key}' is not used when the file declares [[workers]] tables",
                "move it into the [[workers]] table of the Worker that needs it",
            )
    root.warn_unknown({"workers", *IGNORED_KEYS, *COMMON_KEYS, *claimed})
    workers = []
    for t in tables:
        if found_envs is not None:
            found_envs.update(env_names(t.data))
        if env:
            chosen, declared = apply_env(t.data, env)
            if declared:
                _warn_not_inherited(t.file, t.data, env, t.path, claimed)
                t = Section(t.file, t.path, chosen, t.base_dir, env_origins(t.data, env, t.path))
        workers.append(_parse_worker(t, secrets, modules, claimed))
    return workers


def _warn_not_inherited(file: Path, table: dict[str, Any], env: str, path: str,
                        claimed: dict[str, Any]) -> None:
    """wrangler's warning for ``vars`` or a binding table left at the top level while
    ``[env.NAME]`` is chosen: environments do not inherit them, so the Worker has none."""
    from edgelet.config_env import not_inherited

    env_table = f"{path}.env.{env}" if path else f"env.{env}"
    for key in not_inherited(table, env):
        if key in claimed or key in ("vars", "define"):
            log.warning("%s: '%s' is set %s but not in %s, and environments do not inherit it, so "
                        "--env %s runs without it; repeat it there as %s.%s",
                        display_path(file), key, f"in {path}" if path else "at the top level",
                        env_table, env, env_table, key)


def _parse_worker(s: Section, secrets: DevVars, modules: dict[str, Any], claimed: dict[str, str]) -> WorkerConfig:
    name = s.str(
        "name", required=True, fix=f"add {s.example('name', _q('my-worker'))} (lowercase letters, digits, dashes)"
    )
    assert name is not None
    if not _WORKER_NAME.match(name) or len(name) > 63:
        raise s.error(
            "name",
            f"{json.dumps(name)} is not a valid Worker name",
            "use at most 63 lowercase letters, digits, dashes or underscores, "
            "starting with a letter or digit, e.g. my-worker",
        )

    main_str = s.str("main", required=True, fix=f"add {s.example('main', _q('src/entry.py'))} naming the Worker script")
    assert main_str is not None
    main = s.resolve(main_str)
    if main.suffix.lower() not in (".py", ".wasm"):
        raise s.error(
            "main",
            f"{json.dumps(main_str)} is neither a .py script nor a .wasm module",
            "point main at a .py file (or a .wasm module)",
        )
    if not main.is_file():
        raise s.error(
            "main",
            f"script {display_path(main, s.base_dir)} does not exist" + (" (it is a folder)" if main.exists() else ""),
            f"create it or correct main (relative paths start at the config file's folder, {display_path(s.base_dir)})",
        )

    compat_date = s.str("compatibility_date")
    if compat_date is not None:
        try:
            ok = builtins.bool(_DATE.match(compat_date)) and _dt.date.fromisoformat(compat_date) is not None
        except ValueError:
            ok = False
        if not ok:
            raise s.error(
                "compatibility_date",
                f"{json.dumps(compat_date)} is not a date",
                f"use YYYY-MM-DD, e.g. {s.example('compatibility_date', _q('2025-01-01'))}",
            )
        today = _dt.datetime.now(_dt.UTC).date().isoformat()
        if compat_date > today:  # Miniflare refuses it too, and Cloudflare at deploy
            raise s.error(
                "compatibility_date",
                f"{json.dumps(compat_date)} is in the future (today is {today} UTC), and a Worker "
                f"cannot ask for behaviour of a runtime that does not exist yet",
                f"use today's date or an earlier one, e.g. {s.example('compatibility_date', _q(today))}",
            )
    flags = s.str_list("compatibility_flags")

    variables: dict[str, Any] = {}
    vars_section = s.table("vars")
    if vars_section is not None:
        for key, value in vars_section.data.items():
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError):
                raise vars_section.error(
                    key,
                    f"value {_describe(value)} is not a string or JSON value",
                    "use a string, number, boolean, list or table (dates must be quoted strings)",
                ) from None
            variables[key] = value

    crons: list[str] = []
    triggers = s.table("triggers")
    if triggers is not None:
        triggers.warn_unknown(("crons",))
        crons = triggers.cron_list("crons")

    limits = Limits()
    limits_section = s.table("limits")
    if limits_section is not None:
        limits_section.warn_unknown(("cpu_ms", "memory_mb", "request_timeout_ms"))
        limits = Limits(
            cpu_ms=limits_section.int("cpu_ms", default=Limits.cpu_ms, min=1, max=300_000) or Limits.cpu_ms,
            memory_mb=limits_section.int("memory_mb", default=Limits.memory_mb, min=16, max=65_536) or Limits.memory_mb,
            request_timeout_ms=limits_section.int(
                "request_timeout_ms", default=Limits.request_timeout_ms, min=1, max=3_600_000
            )
            or Limits.request_timeout_ms,
        )

    bindings: dict[str, list[Any]] = {}
    for kind, mod in modules.items():
        for key in getattr(mod, "KEYS", ()):
            if claimed.get(key) == kind and key in s.data:
                bindings.setdefault(kind, []).extend(mod.parse(key, s))

    s.warn_unknown({*COMMON_KEYS, *IGNORED_KEYS, *claimed})

    worker = WorkerConfig(
        name=name,
        main=main,
        config_file=s.file,
        compatibility_date=compat_date,
        compatibility_flags=flags,
        vars=variables,
        secrets=dict(secrets.values),
        crons=crons,
        limits=limits,
        bindings=bindings,
        key_path=s.path,
    )
    _check_binding_names(worker, s, secrets)
    return worker


def _check_binding_names(worker: WorkerConfig, s: Section, secrets: DevVars) -> None:
    """One name, one meaning in ``env``: bindings may not collide with each other or vars.

    A ``.dev.vars`` secret may share a name with a var: as in wrangler, the secret then
    overrides the var locally (that is what the file is for). A secret that collides with a
    binding is an error, since one of the two would silently disappear from ``env``.
    """
    seen: dict[str, str] = {k: s.key_path(f"vars.{k}") for k in worker.vars}
    dev_vars_shown = display_path(secrets.file)
    for key in worker.secrets:
        seen.setdefault(key, f"{dev_vars_shown} line {secrets.lines.get(key, '?')}")
    for kind, decls in worker.bindings.items():
        for i, decl in enumerate(decls):
            name = getattr(decl, "binding", None)
            if not name:
                continue
            where = getattr(decl, "key_path", "") or s.key_path(f"{kind}[{i}]")
            if name in seen:
                raise ConfigError(
                    s.file,
                    where,
                    f"binding name '{name}' is already used by {seen[name]}",
                    "give each binding, var and secret of a Worker its own name",
                )
            seen[name] = where


def _finish(workers: list[WorkerConfig], files: list[Path], modules: dict[str, Any]) -> PlatformConfig:
    """Cross-Worker checks: unique names, then each binding kind's ``validate``."""
    by_name: dict[str, WorkerConfig] = {}
    for w in workers:
        first = by_name.get(w.name)
        if first is not None:
            other = display_path(first.config_file) + (f" {first.key_path}" if first.key_path else "")
            raise ConfigError(
                w.config_file,
                f"{w.key_path}.name" if w.key_path else "name",
                f"Worker name '{w.name}' is already used by {other}",
                "give each Worker its own name (or pass each -c file only once)",
            )
        by_name[w.name] = w
    config = PlatformConfig(workers=workers, files=files)
    for mod in modules.values():
        validate = getattr(mod, "validate", None)
        if validate is not None:
            validate(config)
    return config


def load_config(paths: Sequence[Path | str] | None = None, *, cwd: Path | None = None,
                env: str | None = None, var_overrides: dict[str, str] | None = None) -> PlatformConfig:
    """Read, parse and validate the given files (or the one :func:`find_config` finds).

    Several files concatenate their Workers in order; the first Worker is the primary.
    ``env`` chooses the ``[env.NAME]`` tables (``--env``); ``var_overrides`` (``--var``) are
    set in every Worker's ``vars`` last, over the file and ``.dev.vars``. Either a complete
    :class:`PlatformConfig` is returned or one :class:`ConfigError` is raised.
    """
    base = Path(cwd) if cwd is not None else Path.cwd()
    if not paths:
        files = [find_config(base)]
    else:
        files = []
        for p in paths:
            path = Path(p)
            path = (path if path.is_absolute() else base / path).resolve()
            if not path.is_file():
                raise ConfigError(
                    path,
                    None,
                    "configuration file not found" if not path.exists() else "not a file",
                    f"check the -c path (it is relative to {display_path(base)})",
                )
            files.append(path)
    modules = _binding_modules()
    workers: list[WorkerConfig] = []
    found_envs: set[str] = set()
    for f in files:
        workers.extend(_parse_file(_read_file(f), f, f.parent, modules, env, found_envs))
    if env and env not in found_envs:
        declared = ", ".join(sorted(found_envs)) or "none"
        raise ConfigError(
            files[0], f"env.{env}",
            f"no environment named {json.dumps(env)} (environments declared: {declared})",
            f"add an [env.{env}] table, or pass one of the declared names to --env",
        )
    if var_overrides:
        _apply_var_overrides(workers, var_overrides)
    return _finish(workers, files, modules)


def _apply_var_overrides(workers: list[WorkerConfig], overrides: dict[str, str]) -> None:
    """``--var KEY:VALUE``: a string var in every Worker, winning over the file and ``.dev.vars``."""
    for w in workers:
        for key, value in overrides.items():
            for kind, decls in w.bindings.items():
                if any(getattr(d, "binding", None) == key for d in decls):
                    raise ConfigError(
                        w.config_file, None,
                        f"--var {key}: Worker '{w.name}' already has a {kind} binding named {key}",
                        "choose another name for the var",
                    )
            w.secrets.pop(key, None)
            w.vars[key] = value


def load_config_dict(data: dict[str, Any], *, base_dir: Path, name: str = "<dict>") -> PlatformConfig:
    """The same rules applied to an in-memory dict (tests, ``edgelet.testing``).

    Relative paths and ``.dev.vars`` are looked up in ``base_dir``; messages name ``name``.
    """
    if not isinstance(data, dict):
        raise ConfigError(name, None, f"expected a table, got {_describe(data)}", "pass a dict of wrangler keys")
    base = Path(base_dir).resolve()
    file = base / name
    modules = _binding_modules()
    workers = _parse_file(data, file, base, modules)
    return _finish(workers, [file], modules)
