"""Check a Worker Loader's ``WorkerCode`` and write its modules to a folder.

The shape is Cloudflare's: ``{compatibilityDate, compatibilityFlags?, mainModule,
modules: {name: source}, env?, globalOutbound?}``. A module is a string or ``{"py": source}``
(``{"text"|"json"|"data": ...}`` too, as plain files); edgelet runs Python modules only.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

_KEYS = {"compatibilityDate", "compatibilityFlags", "mainModule", "modules", "env", "globalOutbound",
         "allowExperimental", "limits", "tails"}


def check_code(worker_id: str, code: Any) -> dict[str, Any]:
    """The validated code; a ValueError/TypeError names the field and the fix."""
    where = f"Worker Loader code for id {worker_id!r}"
    if not isinstance(code, dict):
        raise TypeError(f"{where}: the callback returned {type(code).__name__}; return a dict "
                        f"{{'compatibilityDate': ..., 'mainModule': 'entry.py', 'modules': {{'entry.py': source}}}}")
    main = code.get("mainModule")
    modules = code.get("modules")
    if not isinstance(modules, dict) or not modules:
        raise ValueError(f"{where}: 'modules' must be a non-empty dict of module name -> source")
    if not isinstance(main, str) or main not in modules:
        raise ValueError(f"{where}: 'mainModule' must name one of the modules ({', '.join(map(str, modules))}), "
                         f"got {main!r}")
    if not main.endswith(".py"):
        raise ValueError(f"{where}: mainModule {main!r} is not a Python module; edgelet runs Python "
                         f"Workers only (name it e.g. 'entry.py')")
    for name in modules:
        path = PurePosixPath(str(name))
        if path.is_absolute() or ".." in path.parts or not path.parts:
            raise ValueError(f"{where}: module name {name!r} must be a relative path inside the Worker")
    env = code.get("env") or {}
    if not isinstance(env, dict):
        raise TypeError(f"{where}: 'env' must be a dict of names to values")
    for key, value in env.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(f"{where}: env[{key!r}] is a {type(value).__name__}; edgelet passes data "
                            f"(str, numbers, lists, dicts) to a loaded Worker, not bindings") from None
    return {"mainModule": main, "modules": dict(modules), "env": dict(env)}


def write_modules(folder: Path, modules: dict[str, Any]) -> None:
    """Every module as a file under ``folder`` (packages get their folders)."""
    for name, source in modules.items():
        if isinstance(source, dict):
            kinds = [k for k in ("py", "text", "json", "data") if k in source]
            if not kinds:
                raise ValueError(f"module {name!r}: {sorted(source)} modules are not supported; edgelet runs "
                                 f"Python modules only ({{'py': source}} or a string)")
            source = source[kinds[0]]
            if kinds[0] == "json":
                source = json.dumps(source)
        path = folder / str(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(source, (bytes, bytearray)):
            path.write_bytes(bytes(source))
        else:
            path.write_text(str(source))
