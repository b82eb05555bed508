"""Every public name of Cloudflare's published ``workers-runtime-sdk`` exists in edgelet's
``workers`` module with a compatible signature.

The SDK is pip-installed (no dependencies) into a throwaway folder and read with ``ast``; it
is never imported (it needs Pyodide). edgelet's side is read by importing its SDK folder in
a subprocess (what a Worker imports). The SDK moves: when it adds a name or a parameter,
this test names it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

SDK_PACKAGE = "workers-runtime-sdk"
#: modules of the SDK whose public surface edgelet mirrors, and where edgelet keeps them
MODULES = ["workers", "workers.asgi", "workers.wsgi", "workers.workflows", "workers.gateway"]
#: names an SDK module defines that are not part of what a Worker uses
PRIVATE_HELPERS = {
    # module-level helpers of the adapters (not in any __all__, used internally by the SDK)
    "workers.asgi": {"acquire_js_buffer", "close_stream_quietly", "process_websocket", "logger",
                     "background_tasks", "js", "Event", "Future", "Queue", "create_task",
                     "ensure_future", "Awaitable", "contextmanager", "dataclass", "Any", "unquote",
                     "logging", "Context", "Request", "WorkerEntrypoint", "BaseOptions"},
    "workers.wsgi": {"logger", "build_environ_async"},
}


@pytest.fixture(scope="module")
def sdk_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("sdk")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet",
                           "--disable-pip-version-check", "--target", str(target), SDK_PACKAGE],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        pytest.skip(f"cannot install {SDK_PACKAGE} from PyPI: {proc.stderr.strip()[-500:]}")
    assert (target / "workers" / "__init__.py").exists(), f"{SDK_PACKAGE} has no workers package"
    return target


def _module_file(root: Path, module: str) -> Path:
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef, *, method: bool) -> list[dict[str, Any]]:
    """Parameters as [{name, kind, default}] (kind as inspect names it)."""
    a = fn.args
    out: list[dict[str, Any]] = []
    positional = [*a.posonlyargs, *a.args]
    defaults_from = len(positional) - len(a.defaults)
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        out.append({"name": arg.arg, "kind": kind, "default": i >= defaults_from})
    if a.vararg:
        out.append({"name": a.vararg.arg, "kind": "VAR_POSITIONAL", "default": True})
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append({"name": arg.arg, "kind": "KEYWORD_ONLY", "default": default is not None})
    if a.kwarg:
        out.append({"name": a.kwarg.arg, "kind": "VAR_KEYWORD", "default": True})
    is_static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in fn.decorator_list)
    if method and not is_static and out:
        out = out[1:]  # self / cls
    return out


def _definitions(path: Path) -> dict[str, Any]:
    """Public functions and classes a file defines (a class includes the members of base
    classes defined in the same file: ``Response(FetchResponse)``)."""
    tree = ast.parse(path.read_text())
    found: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            found[node.name] = {"kind": "function", "params": _params(node, method=False)}
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            members: dict[str, Any] = {}
            for base in node.bases:
                if isinstance(base, ast.Name) and base.id in found and found[base.id]["kind"] == "class":
                    members.update({k: v for k, v in found[base.id]["members"].items() if k != "__init__"})
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name == "__init__"):
                    is_prop = any(isinstance(d, ast.Name) and d.id == "property" for d in item.decorator_list)
                    members[item.name] = ({"kind": "property"} if is_prop else
                                          {"kind": "function", "params": _params(item, method=True)})
            found[node.name] = {"kind": "class", "members": members}
    return found


def sdk_surface(root: Path) -> dict[str, dict[str, Any]]:
    """module -> name -> {"kind": "function"|"class"|"value", "params", "members"}; names a
    package re-exports (``from .request import Request``) are read where they are defined."""
    surface: dict[str, dict[str, Any]] = {}
    for module in MODULES:
        path = _module_file(root, module)
        if not path.exists():
            continue
        text = path.read_text()
        tree = ast.parse(text)
        names: dict[str, Any] = dict(_definitions(path))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
                source = _module_file(path.parent, node.module)
                defs = _definitions(source) if source.exists() else {}
                for alias in node.names:
                    public = alias.asname or alias.name
                    if not public.startswith("_"):
                        names[public] = defs.get(alias.name, {"kind": "value"})
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(node.value, ast.List):
                        for e in node.value.elts:  # names served by __getattr__ count too
                            names.setdefault(ast.literal_eval(e), {"kind": "value"})
                    elif isinstance(t, ast.Name) and not t.id.startswith("_"):
                        names.setdefault(t.id, {"kind": "value"})
        if "def __getattr__" in text and 'name == "env"' in text:
            names.setdefault("env", {"kind": "value"})
        skip = PRIVATE_HELPERS.get(module, set())
        surface[module] = {k: v for k, v in names.items() if k not in skip}
    return surface


EDGELET_PROBE = r"""
import importlib, inspect, json, sys
sys.path.insert(0, sys.argv[1])
wanted = json.loads(sys.stdin.read())
out = {}
def params(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [{"name": p.name, "kind": p.kind.name, "default": p.default is not p.empty or
             p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)} for p in sig.parameters.values()]
for module, names in wanted.items():
    try:
        mod = importlib.import_module(module)
    except Exception as exc:
        out[module] = {"__error__": repr(exc)}
        continue
    found = {}
    for name, spec in names.items():
        try:
            obj = getattr(mod, name)
        except Exception:
            # served by the module's __getattr__ inside a running Worker only (workers.env)
            if spec["kind"] == "value" and name in getattr(mod, "__all__", ()):
                found[name] = {"members": {}}
            continue
        entry = {"members": {}}
        if spec["kind"] == "function" and callable(obj):
            entry["params"] = params(obj)
        if spec["kind"] == "class" and isinstance(obj, type):
            instance = None
            for args in ((), ("http://example.com/",), ([],)):
                try:
                    instance = obj(*args)
                    break
                except Exception:
                    pass
            for member, mspec in spec["members"].items():
                if not hasattr(obj, member) and member != "__init__":
                    if mspec["kind"] == "property" and instance is not None and hasattr(instance, member):
                        entry["members"][member] = {}  # an attribute every instance has
                    continue
                raw = inspect.getattr_static(obj, member, None)
                if mspec["kind"] == "function":
                    target = obj.__init__ if member == "__init__" else getattr(obj, member)
                    if hasattr(raw, "on_instance"):  # Response.json: builds on the class, reads on an instance
                        target = getattr(obj, raw.on_instance)
                    p = params(target)
                    bound = isinstance(raw, (classmethod, staticmethod)) or member != "__init__" and \
                        inspect.ismethod(target)
                    if p is not None and member == "__init__":
                        p = p[1:] if p and p[0]["name"] == "self" else p
                    elif p is not None and not bound and p and p[0]["name"] in ("self", "cls"):
                        p = p[1:]
                    entry["members"][member] = {"params": p}
                else:
                    entry["members"][member] = {}
        found[name] = entry
    out[module] = found
print(json.dumps(out))
"""


def edgelet_surface(wanted: dict[str, Any]) -> dict[str, Any]:
    from edgelet.runtime.isolate import SDK_DIR
    proc = subprocess.run([sys.executable, "-c", EDGELET_PROBE, SDK_DIR], input=json.dumps(wanted),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def incompatible(sdk: list[dict[str, Any]], ours: list[dict[str, Any]] | None) -> str | None:
    """Why a call valid against the SDK's signature could fail against ours (None: fine).

    Positional parameters must sit at the same place (names may differ only where the SDK's
    are positional-only); every keyword the SDK accepts must be accepted; we may not require
    what the SDK leaves optional."""
    if ours is None:
        return None  # builtin or C signature: nothing to compare
    var_pos = any(p["kind"] == "VAR_POSITIONAL" for p in ours)
    var_kw = any(p["kind"] == "VAR_KEYWORD" for p in ours)
    our_pos = [p for p in ours if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    by_name = {p["name"]: p for p in ours if p["kind"] not in ("VAR_POSITIONAL", "VAR_KEYWORD")}
    sdk_pos = [p for p in sdk if p["kind"] in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD")]
    for i, p in enumerate(sdk_pos):
        if i >= len(our_pos):
            if not var_pos:
                return f"positional parameter {i + 1} ({p['name']!r}) is not accepted"
            continue
        if p["kind"] == "POSITIONAL_OR_KEYWORD" and our_pos[i]["name"] != p["name"]:
            return (f"positional parameter {i + 1} is {our_pos[i]['name']!r} in edgelet but "
                    f"{p['name']!r} in the SDK")
    for p in sdk:
        if p["kind"] in ("KEYWORD_ONLY", "POSITIONAL_OR_KEYWORD") and p["name"] not in by_name and not var_kw:
            return f"keyword {p['name']!r} is not accepted"
    sdk_names = {p["name"] for p in sdk}
    sdk_required = {p["name"] for p in sdk if not p["default"]}
    for p in ours:
        if not p["default"] and p["name"] not in sdk_required:
            if p["name"] in sdk_names or p["kind"] == "KEYWORD_ONLY" or len(sdk_pos) <= our_pos.index(p):
                return f"edgelet requires {p['name']!r}, which the SDK does not"
    return None


def test_edgelet_has_the_whole_public_surface_of_the_published_sdk(sdk_dir: Path) -> None:
    sdk = sdk_surface(sdk_dir)
    assert "Request" in sdk["workers"] and "fetch" in sdk["workers.asgi"], "the SDK could not be read"
    ours = edgelet_surface(sdk)
    problems: list[str] = []
    for module, names in sdk.items():
        mine = ours.get(module, {})
        if "__error__" in mine:
            problems.append(f"{module}: cannot import edgelet's module: {mine['__error__']}")
            continue
        for name, spec in sorted(names.items()):
            if name not in mine:
                problems.append(f"{module}.{name}: missing in edgelet")
                continue
            if spec["kind"] == "function":
                why = incompatible(spec["params"], mine[name].get("params"))
                if why:
                    problems.append(f"{module}.{name}(): {why}")
            elif spec["kind"] == "class":
                for member, mspec in sorted(spec["members"].items()):
                    got = mine[name]["members"].get(member)
                    if got is None:
                        problems.append(f"{module}.{name}.{member}: missing in edgelet")
                    elif mspec["kind"] == "function":
                        why = incompatible(mspec["params"], got.get("params"))
                        if why:
                            problems.append(f"{module}.{name}.{member}(): {why}")
    compared = sum(len(v.get("members", {})) + 1 for names in sdk.values() for v in names.values())
    assert compared > 100, f"only {compared} names and members read from the SDK"
    assert not problems, "edgelet's workers module differs from Cloudflare's SDK:\n" + "\n".join(problems)


def test_the_comparison_catches_what_it_should() -> None:
    """The checker itself: a missing keyword, a moved positional, an extra requirement."""
    def p(name: str, kind: str = "POSITIONAL_OR_KEYWORD", default: bool = False) -> dict[str, Any]:
        return {"name": name, "kind": kind, "default": default}
    sdk = [p("body", default=True), p("status", default=True), p("status_text", default=True)]
    assert incompatible(sdk, [p("body", default=True), p("status", default=True)]) is not None
    assert incompatible(sdk, [p("body", default=True), p("status_text", default=True),
                              p("status", default=True)]) is not None
    assert incompatible(sdk, [*sdk, p("extra")]) is not None
    assert incompatible(sdk, [*sdk, p("extra", default=True), p("kw", "VAR_KEYWORD", True)]) is None
